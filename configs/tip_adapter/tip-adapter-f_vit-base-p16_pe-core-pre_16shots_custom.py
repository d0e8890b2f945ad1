_base_ = [
    '../_base_/models/clip_pe-core_vit-base-p16.py',
    '../_base_/datasets/custom_clip_224.py',
    '../_base_/datasets/few_shot_tip-adapter_224.py',
    '../_base_/schedules/tip-adapter-f_adamw-cos_bs256.py',
]
# Tip-Adapter-F on a frozen PE-Core B/16 (the CLIP of
# pe-core_vit-base-p16.py), your own images as in
# tip-adapter-f_vit-base-p16_16shots_custom.py. Set
# model.clip.init_cfg.checkpoint to the converted PE-Core weights
# (tools/model_converters/pe_core_to_mmprompt.py).
model = dict(
    _delete_=True,
    type='TipAdapterF',
    clip={{_base_.model}},
    templates='simple',
    alpha=1.0,
    beta=1.0)
# PE's preprocessing for the cache, validation and test images: a bilinear
# resize to the square, no crop.
pe_pipeline = [
    dict(
        type='CLIPPreprocess',
        scale=224,
        resize_mode='squash',
        interpolation='bilinear'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            type='CustomDataset',
            data_root={{_base_.data_root}},
            data_prefix='train',
            pipeline={{_base_.train_pipeline}})))
val_dataloader = dict(
    dataset=dict(
        dataset=dict(
            type='CustomDataset',
            data_root={{_base_.data_root}},
            data_prefix='train',
            pipeline=pe_pipeline)))
test_dataloader = dict(dataset=dict(pipeline=pe_pipeline))
