_base_ = [
    '../_base_/models/clip_vit-huge-p14_dfn5b-378px.py',
    '../_base_/datasets/cifar100_bs64_clip_224.py',
    '../_base_/default_runtime.py',
]

# CIFAR-100's classes with OpenAI's 18 CIFAR templates, as open_clip's
# benchmark uses them.
model = dict(categories='cifar100', templates='openai_cifar')

# The model's own preprocessing (its image_preprocess): the whole image
# squashed to 378 x 378, bicubic.
test_dataloader = dict(
    dataset=dict(pipeline=[
        dict(
            type='CLIPPreprocess',
            scale=378,
            resize_mode='squash', array_order='rgb'),
        dict(type='PackInputs'),
    ]))
