# Copyright (c) mmprompt contributors. All rights reserved.
from .common import (ConverterError, load_source_checkpoint,
                     save_checkpoint_atomic, unwrap_state_dict)
from .openai_clip import convert_openai_clip, infer_openai_clip_arch
from .pe_core import convert_pe_core, infer_pe_core_arch
from .ram import convert_ram
from .rules import apply_rules
from .swin import (swin_relative_position_index, swin_unfold_norm,
                   swin_unfold_reduction)

#: The ``Converter:`` keys of the zoo's metafiles, each to its conversion
#: function ``convert(state_dict) -> (converted, meta)``; see
#: :func:`mmprompt.apis.hub.get_checkpoint`.
CONVERTERS = {
    'openai_clip': convert_openai_clip,
    'ram': convert_ram,
    'pe_core': convert_pe_core,
}

__all__ = [
    'CONVERTERS', 'ConverterError', 'apply_rules', 'load_source_checkpoint',
    'save_checkpoint_atomic', 'swin_unfold_norm', 'swin_unfold_reduction',
    'unwrap_state_dict', 'convert_openai_clip', 'infer_openai_clip_arch',
    'convert_pe_core', 'infer_pe_core_arch', 'convert_ram',
    'swin_relative_position_index'
]
