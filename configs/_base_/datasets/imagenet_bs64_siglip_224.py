# ImageNet-1k validation for SigLIP / SigLIP 2 at 224px: open_clip's squash
# resize (bicubic, no crop), then RGB; BGR out for the model's to_rgb=True.
_base_ = './imagenet_bs64_clip_224.py'

test_pipeline = [
    dict(
        type='CLIPPreprocess',
        scale=224,
        resize_mode='squash',
        interpolation='bicubic'),
    dict(type='PackInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
