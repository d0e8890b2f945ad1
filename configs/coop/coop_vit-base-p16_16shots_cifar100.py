_base_ = [
    '../_base_/models/coop_vit-base-p16.py',
    '../_base_/datasets/cifar100_bs64_clip_224.py',
    '../_base_/datasets/few_shot_clip_224.py',
    '../_base_/schedules/coop_sgd-cos_bs32.py',
]
# CoOp on CIFAR-100: 16 shots, 200 epochs. CIFAR gives RGB arrays (no
# LoadImageFromFile): RGBToBGR makes them BGR like the test pipeline's
# CLIPPreprocess output, for the model's to_rgb=True.
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
                    backend='pillow',
                    interpolation='bicubic'),
                dict(type='RandomFlip', prob=0.5, direction='horizontal'),
                dict(type='PackInputs'),
            ])))
