# Copyright (c) mmprompt contributors. All rights reserved.
from .common import (ConverterError, load_source_checkpoint,
                     save_checkpoint_atomic, unwrap_state_dict)
from .openai_clip import convert_openai_clip, infer_openai_clip_arch
from .ram import convert_ram
from .rules import apply_rules
from .swin import (swin_relative_position_index, swin_unfold_norm,
                   swin_unfold_reduction)

__all__ = [
    'ConverterError', 'apply_rules', 'load_source_checkpoint',
    'save_checkpoint_atomic', 'swin_unfold_norm', 'swin_unfold_reduction',
    'unwrap_state_dict', 'convert_openai_clip', 'infer_openai_clip_arch',
    'convert_ram', 'swin_relative_position_index'
]
