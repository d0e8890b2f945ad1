_base_ = [
    '../_base_/models/clip_vit-base-p32.py',
    '../_base_/datasets/cifar100_bs64_clip_224.py',
    '../_base_/default_runtime.py',
]

# CIFAR-100's classes with OpenAI's 18 CIFAR templates, as the published
# zero-shot numbers were made.
model = dict(categories='cifar100', templates='openai_cifar')
