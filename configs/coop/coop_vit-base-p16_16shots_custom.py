_base_ = [
    '../_base_/models/coop_vit-base-p16.py',
    '../_base_/datasets/custom_clip_224.py',
    '../_base_/datasets/few_shot_clip_224.py',
    '../_base_/schedules/coop_sgd-cos_bs32.py',
]
# CoOp on your own images, no code: data/custom/train/<class>/*.jpg and
# data/custom/test/<class>/*.jpg (CustomDataset; class names = folder names,
# '_' read as a space in the prompts). 16 shots, 200 epochs.
train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            type='CustomDataset',
            data_root={{_base_.data_root}},
            data_prefix='train',
            pipeline={{_base_.train_pipeline}})))
