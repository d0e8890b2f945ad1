# Copyright (c) mmprompt contributors. All rights reserved.
from .common import (ConverterError, apply_rules, load_source_checkpoint,
                     save_checkpoint_atomic, swin_unfold_norm,
                     swin_unfold_reduction, unwrap_state_dict)

__all__ = [
    'ConverterError', 'apply_rules', 'load_source_checkpoint',
    'save_checkpoint_atomic', 'swin_unfold_norm', 'swin_unfold_reduction',
    'unwrap_state_dict'
]
