# CIFAR-100 test split for SigLIP / SigLIP 2 at 384px: open_clip's squash
# resize (bicubic, no crop). CIFAR gives RGB arrays; BGR out for the model's
# to_rgb=True.
_base_ = './cifar100_bs64_clip_224.py'

test_pipeline = [
    dict(
        type='CLIPPreprocess',
        scale=384,
        array_order='rgb',
        resize_mode='squash',
        interpolation='bicubic'),
    dict(type='PackInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
