_base_ = [
    '../_base_/models/clip_pe-core_vit-base-p16.py',
    '../_base_/datasets/custom_clip_224.py',
    '../_base_/datasets/few_shot_clip_224.py',
    '../_base_/schedules/coop_sgd-cos_bs32.py',
]
# CoOp on a frozen PE-Core B/16 (the CLIP of pe-core_vit-base-p16.py), your
# own images as in coop_vit-base-p16_16shots_custom.py. Set
# model.clip.init_cfg.checkpoint to the converted PE-Core weights
# (tools/model_converters/pe_core_to_mmprompt.py).
model = dict(
    _delete_=True,
    type='CoOp',
    clip={{_base_.model}},
    n_ctx=16,
    ctx_init=None,
    csc=False,
    class_token_position='end')
train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            type='CustomDataset',
            data_root={{_base_.data_root}},
            data_prefix='train',
            pipeline={{_base_.train_pipeline}})))
# PE's test preprocessing: a bilinear resize to the square, no crop.
test_dataloader = dict(
    dataset=dict(pipeline=[
        dict(
            type='CLIPPreprocess',
            scale=224,
            resize_mode='squash',
            interpolation='bilinear'),
        dict(type='PackInputs'),
    ]))
