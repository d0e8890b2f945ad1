# Copyright (c) mmprompt contributors. All rights reserved.
from .examples import load_example_images, resolve_examples
from .few_shot import FewShotDataset, RGBToBGR
from .multilabel_tagging import TaggingDataset, read_tag_list
from .ram_transforms import RAMPreprocess, ram_resize
from .transforms import CLIPPreprocess, clip_resize_crop, open_image

__all__ = [
    'CLIPPreprocess', 'FewShotDataset', 'RGBToBGR', 'clip_resize_crop',
    'open_image', 'RAMPreprocess', 'TaggingDataset', 'ram_resize',
    'read_tag_list', 'load_example_images', 'resolve_examples'
]
