_base_ = [
    '../_base_/models/siglip2_vit-large-p16-384px.py',
    '../_base_/datasets/imagenet_bs64_siglip_384.py',
    '../_base_/default_runtime.py',
]

# OpenAI's 1000 cleaned ImageNet names with its 80 ImageNet templates (the
# texts canonicalised by the tokenizer), as open_clip evaluates SigLIP.
model = dict(categories='imagenet', templates='openai_imagenet')
