_base_ = [
    '../_base_/models/siglip2_vit-so400m-p16-384px.py',
    '../_base_/datasets/cifar100_bs64_siglip_384.py',
    '../_base_/default_runtime.py',
]

# CIFAR-100's classes with OpenAI's 18 CIFAR templates (the texts
# canonicalised by the tokenizer).
model = dict(categories='cifar100', templates='openai_cifar')
