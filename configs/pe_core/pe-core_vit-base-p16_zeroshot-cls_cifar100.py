_base_ = [
    '../_base_/models/pe-core_vit-base-p16.py',
    '../_base_/datasets/cifar100_bs64_clip_224.py',
    '../_base_/default_runtime.py',
]

# PE's preprocessing (open_clip's for PE-Core): a bilinear resize to the
# square, no crop. CIFAR gives RGB arrays.
test_dataloader = dict(
    dataset=dict(pipeline=[
        dict(
            type='CLIPPreprocess',
            scale=224,
            array_order='rgb',
            resize_mode='squash',
            interpolation='bilinear'),
        dict(type='PackInputs'),
    ]))

# CIFAR-100's classes with OpenAI's 18 CIFAR templates.
model = dict(categories='cifar100', templates='openai_cifar')
