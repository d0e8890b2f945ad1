_base_ = [
    '../_base_/models/clip_vit-large-p14_dfn2b.py',
    '../_base_/datasets/imagenet_bs64_clip_224.py',
    '../_base_/default_runtime.py',
]

# OpenAI's 1000 cleaned ImageNet names with its 80 ImageNet templates, as
# open_clip's benchmark made the published number.
model = dict(categories='imagenet', templates='openai_imagenet')
