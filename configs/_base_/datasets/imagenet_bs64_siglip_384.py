# ImageNet-1k validation for SigLIP / SigLIP 2 at 384px (see the 224px
# file).
_base_ = './imagenet_bs64_clip_224.py'

test_pipeline = [
    dict(
        type='CLIPPreprocess',
        scale=384,
        resize_mode='squash',
        interpolation='bicubic'),
    dict(type='PackInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
