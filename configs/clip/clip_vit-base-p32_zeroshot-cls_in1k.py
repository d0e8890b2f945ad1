_base_ = [
    '../_base_/models/clip_vit-base-p32.py',
    '../_base_/datasets/imagenet_bs64_clip_224.py',
    '../_base_/default_runtime.py',
]

# OpenAI's 1000 cleaned ImageNet names with its 80 ImageNet templates, as
# the published zero-shot numbers were made.
model = dict(categories='imagenet', templates='openai_imagenet')
