_base_ = [
    '../_base_/models/pe-core_vit-large-p14-336px.py',
    '../_base_/datasets/imagenet_bs64_clip_336.py',
    '../_base_/default_runtime.py',
]

# PE's preprocessing (open_clip's for PE-Core): a bilinear resize to the
# square, no crop.
test_dataloader = dict(
    dataset=dict(pipeline=[
        dict(
            type='CLIPPreprocess',
            scale=336,
            resize_mode='squash',
            interpolation='bilinear'),
        dict(type='PackInputs'),
    ]))

# OpenAI's 1000 cleaned ImageNet names with its 80 ImageNet templates.
model = dict(categories='imagenet', templates='openai_imagenet')
