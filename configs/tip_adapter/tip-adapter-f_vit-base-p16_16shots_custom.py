_base_ = [
    '../_base_/models/tip-adapter-f_vit-base-p16.py',
    '../_base_/datasets/custom_clip_224.py',
    '../_base_/datasets/few_shot_tip-adapter_224.py',
    '../_base_/schedules/tip-adapter-f_adamw-cos_bs256.py',
]
# Tip-Adapter-F on your own images, no code: data/custom/train/<class>/*.jpg
# (at least 20 per class: 16 shots + 4 for validation, drawn from the rest)
# and data/custom/test/<class>/*.jpg, as for CoOp. With a folder of
# validation images of your own, point val_dataloader.dataset at it instead
# (a CustomDataset over data/custom/val).
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
            pipeline={{_base_.test_pipeline}})))
