_base_ = [
    '../_base_/models/coop_vit-base-p16.py',
    '../_base_/datasets/imagenet_bs64_clip_224.py',
    '../_base_/datasets/few_shot_clip_224.py',
    '../_base_/schedules/coop_sgd-cos_bs32.py',
]
# CoOp on ImageNet: 16 shots, 50 epochs, 16 unified context vectors.
train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            type='ImageNet',
            data_root='data/imagenet',
            split='train',
            pipeline={{_base_.train_pipeline}})))
max_epochs = 50
param_scheduler = [
    dict(type='ConstantLR', factor=0.005, by_epoch=True, begin=0, end=2),
    dict(type='CosineAnnealingLR', T_max=50, by_epoch=True, begin=0, end=50)
]
train_cfg = dict(max_epochs=50)
