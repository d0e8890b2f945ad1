# CIFAR-100 for 336px models (ViT-L/14@336px).
_base_ = './cifar100_bs64_clip_224.py'

test_pipeline = [
    dict(type='CLIPPreprocess', scale=336, array_order='rgb'),
    dict(type='PackInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
