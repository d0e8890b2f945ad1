# Copyright (c) mmprompt contributors. All rights reserved.
from functools import partial
from typing import Callable, Dict, Optional

from .common import (ConverterError, load_source_checkpoint, read_tag_list,
                     read_thresholds, save_checkpoint_atomic,
                     unwrap_state_dict)
from .openai_clip import convert_openai_clip, infer_openai_clip_arch
from .ram import convert_ram
from .rules import apply_rules
from .siglip import convert_siglip, infer_siglip_arch
from .swin import (swin_relative_position_index, swin_unfold_norm,
                   swin_unfold_reduction)


def _weights_only(convert: Callable) -> Callable:
    """A converter of the weights alone, taking (and ignoring) data files."""

    def with_files(state_dict: dict, data: Dict[str, str]):
        return convert(state_dict)

    return with_files


def convert_ram_files(state_dict: dict,
                      data: Dict[str, str],
                      model: Optional[str] = None):
    """:func:`convert_ram` with its tag lists and thresholds read from the
    zoo's data files (keys ``tag_list``, ``tag_list_chinese``,
    ``thresholds``), as ``ram_to_mmprompt.py`` reads them."""
    return convert_ram(
        state_dict,
        read_tag_list(data['tag_list']) if 'tag_list' in data else None,
        read_tag_list(data['tag_list_chinese'], unique=False)
        if 'tag_list_chinese' in data else None,
        read_thresholds(data['thresholds']) if 'thresholds' in data else None,
        model=model)


#: The converters a metafile's ``Converter:`` names by key:
#: ``convert(state_dict, data_files) -> (converted, meta)``, ``data_files``
#: mapping the row's ``Data Files`` keys to the downloaded paths. Each key
#: ``k`` has the command line ``tools/model_converters/<k>_to_mmprompt.py``
#: except ``ram_plus`` (``ram_to_mmprompt.py --model ram_plus``).
CONVERTERS: Dict[str, Callable] = {
    'openai_clip': _weights_only(convert_openai_clip),
    'ram': partial(convert_ram_files, model='ram'),
    'ram_plus': partial(convert_ram_files, model='ram_plus'),
    'siglip': _weights_only(convert_siglip),
}

__all__ = [
    'CONVERTERS', 'ConverterError', 'apply_rules', 'load_source_checkpoint',
    'save_checkpoint_atomic', 'swin_unfold_norm', 'swin_unfold_reduction',
    'unwrap_state_dict', 'convert_openai_clip', 'infer_openai_clip_arch',
    'convert_ram', 'convert_ram_files', 'convert_siglip', 'infer_siglip_arch',
    'swin_relative_position_index'
]
