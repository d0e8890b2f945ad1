# Copyright (c) mmprompt contributors. All rights reserved.
from .label_embedding import (build_description_label_embed,
                              build_openset_label_embed, ram_openset_prompts,
                              ram_openset_templates, resolve_ram_templates)
from .preprocess import RAMDataPreprocessor
from .ram import RAM, RAMOpenset, load_ram_checkpoint
from .ram_plus import RAMPlus, RAMPlusOpenset
from .tagging_head import RAMTaggingHead
from .vocabulary import CategoryEncoder, TagVocabulary

RAMNormal = RAM

__all__ = [
    'RAM', 'RAMNormal', 'RAMOpenset', 'RAMPlus', 'RAMPlusOpenset',
    'RAMDataPreprocessor', 'CategoryEncoder', 'TagVocabulary',
    'RAMTaggingHead',
    'build_description_label_embed', 'build_openset_label_embed',
    'load_ram_checkpoint', 'ram_openset_prompts', 'ram_openset_templates',
    'resolve_ram_templates'
]
