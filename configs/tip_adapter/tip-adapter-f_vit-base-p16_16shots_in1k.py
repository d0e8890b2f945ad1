_base_ = [
    '../_base_/models/tip-adapter-f_vit-base-p16.py',
    '../_base_/datasets/imagenet_bs64_clip_224.py',
    '../_base_/datasets/few_shot_tip-adapter_224.py',
    '../_base_/schedules/tip-adapter-f_adamw-cos_bs256.py',
]
# Tip-Adapter-F on ImageNet: 16 shots, Tip-Adapter's 7 ImageNet templates
# and init_alpha 1.17; validation = 4 training images per class that are
# not shots (the original searched alpha / beta on the test set).
model = dict(templates='openai_imagenet_subset', alpha=1.17, beta=1.0)
train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            type='ImageNet',
            data_root='data/imagenet',
            split='train',
            pipeline={{_base_.train_pipeline}})))
val_dataloader = dict(
    dataset=dict(
        dataset=dict(
            type='ImageNet',
            data_root='data/imagenet',
            split='train',
            pipeline={{_base_.test_pipeline}})))
