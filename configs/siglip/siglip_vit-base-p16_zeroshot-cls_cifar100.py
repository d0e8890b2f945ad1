_base_ = [
    '../_base_/models/siglip_vit-base-p16.py',
    '../_base_/datasets/cifar100_bs64_siglip_224.py',
    '../_base_/default_runtime.py',
]

# CIFAR-100's classes with OpenAI's 18 CIFAR templates (the texts
# canonicalised by the tokenizer).
model = dict(categories='cifar100', templates='openai_cifar')
