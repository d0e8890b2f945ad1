_base_ = [
    '../_base_/models/tip-adapter-f_vit-base-p16.py',
    '../_base_/datasets/cifar100_bs64_clip_224.py',
    '../_base_/datasets/few_shot_tip-adapter_224.py',
    '../_base_/schedules/tip-adapter-f_adamw-cos_bs256.py',
]
# Tip-Adapter-F on CIFAR-100: 16 shots; validation = 4 training images per
# class that are not shots. CIFAR gives RGB arrays (no LoadImageFromFile):
# RGBToBGR makes them BGR like the test pipeline's CLIPPreprocess output,
# for the model's to_rgb=True.
train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            type='CIFAR100',
            data_root='data/cifar100',
            split='train',
            pipeline=[
                dict(type='RGBToBGR'),
                dict(
                    type='RandomResizedCrop',
                    scale=224,
                    crop_ratio_range=(0.5, 1.0),
                    backend='pillow',
                    interpolation='bicubic'),
                dict(type='RandomFlip', prob=0.5, direction='horizontal'),
                dict(type='PackInputs'),
            ])))
val_dataloader = dict(
    dataset=dict(
        dataset=dict(
            type='CIFAR100',
            data_root='data/cifar100',
            split='train',
            pipeline={{_base_.test_pipeline}})))
