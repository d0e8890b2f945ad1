_base_ = [
    '../_base_/models/clip_vit-huge-p14_metaclip-2.5b.py',
    '../_base_/datasets/cifar100_bs64_clip_224.py',
    '../_base_/default_runtime.py',
]

# CIFAR-100's classes with OpenAI's 18 CIFAR templates, as open_clip's
# benchmark uses them.
model = dict(categories='cifar100', templates='openai_cifar')
