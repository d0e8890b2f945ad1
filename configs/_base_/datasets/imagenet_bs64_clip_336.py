# ImageNet-1k validation for 336px models (ViT-L/14@336px).
_base_ = './imagenet_bs64_clip_224.py'

test_pipeline = [
    dict(type='CLIPPreprocess', scale=336),
    dict(type='PackInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
