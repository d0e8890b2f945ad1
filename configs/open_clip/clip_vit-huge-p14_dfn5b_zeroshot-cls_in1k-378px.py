_base_ = [
    '../_base_/models/clip_vit-huge-p14_dfn5b-378px.py',
    '../_base_/datasets/imagenet_bs64_clip_224.py',
    '../_base_/default_runtime.py',
]

# OpenAI's 1000 cleaned ImageNet names with its 80 ImageNet templates, as
# open_clip's benchmark made the published number.
model = dict(categories='imagenet', templates='openai_imagenet')

# The model's own preprocessing (its image_preprocess): the whole image
# squashed to 378 x 378, bicubic.
test_dataloader = dict(
    dataset=dict(pipeline=[
        dict(
            type='CLIPPreprocess',
            scale=378,
            resize_mode='squash'),
        dict(type='PackInputs'),
    ]))
