_base_ = [
    '../_base_/models/pe-core_vit-base-p16.py',
    '../_base_/datasets/imagenet_bs64_clip_224.py',
    '../_base_/default_runtime.py',
]

# PE's preprocessing (open_clip's for PE-Core): a bilinear resize to the
# square, no crop.
test_dataloader = dict(
    dataset=dict(pipeline=[
        dict(
            type='CLIPPreprocess',
            scale=224,
            resize_mode='squash',
            interpolation='bilinear'),
        dict(type='PackInputs'),
    ]))

# OpenAI's 1000 cleaned ImageNet names with its 80 ImageNet templates.
model = dict(categories='imagenet', templates='openai_imagenet')
