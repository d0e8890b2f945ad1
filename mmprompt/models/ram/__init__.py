# Copyright (c) mmprompt contributors. All rights reserved.
from .openset import (build_description_label_embed, build_openset_label_embed,
                      ram_openset_prompts, resolve_ram_templates)
from .preprocess import ram_preprocess
from .ram import RAM, RAMNormal, RAMPlus, load_ram_checkpoint
from .ram_openset import RAMOpenset, RAMPlusOpenset
from .tagging_head import RAMTaggingHead

__all__ = [
    'RAM', 'RAMNormal', 'RAMOpenset', 'RAMPlus', 'RAMPlusOpenset',
    'RAMTaggingHead', 'build_description_label_embed',
    'build_openset_label_embed', 'load_ram_checkpoint', 'ram_openset_prompts',
    'ram_preprocess', 'resolve_ram_templates'
]
