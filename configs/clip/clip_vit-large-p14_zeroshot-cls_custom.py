_base_ = [
    '../_base_/models/clip_vit-large-p14.py',
    '../_base_/datasets/custom_clip_224.py',
    '../_base_/default_runtime.py',
]

# Zero-shot on your own images, no code: data/custom/test/<class>/*.jpg, any
# number of classes. The categories are the test set's folder names ('_'
# read as a space), set by PromptClassesHook; top-5 accuracy among fewer
# than 5 classes is reported as top-k over all of them. OpenAI's 80
# ImageNet templates, its general-purpose ensemble.
model = dict(categories=None, templates='openai_imagenet')
custom_hooks = [dict(type='PromptClassesHook', underscore_as_space=True)]
