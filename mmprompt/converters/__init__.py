# Copyright (c) mmprompt contributors. All rights reserved.
import shlex
from functools import partial
from typing import Callable, Dict, List, Tuple

from .common import (ConverterError, load_source_checkpoint, read_tag_list,
                     read_thresholds, save_checkpoint_atomic,
                     unwrap_state_dict)
from .families import (SCRIPT_DIR, check_family, converter_script,
                       describe_checkpoint, identify_checkpoint)
from .open_clip import convert_open_clip
from .openai_clip import convert_openai_clip, infer_openai_clip_arch
from .pe_core import convert_pe_core, infer_pe_core_arch
from .ram import convert_ram
from .rules import apply_rules
from .siglip import convert_siglip, infer_siglip_arch
from .swin import (swin_relative_position_index, swin_unfold_norm,
                   swin_unfold_reduction)

#: The converters by the key a metafile's ``Converter:`` names, each
#: ``convert(state_dict, **inputs) -> (converted, meta)``; the command line
#: of key ``k`` is ``tools/model_converters/k_to_mmprompt.py``.
CONVERTERS: Dict[str, Callable] = {
    'openai_clip': convert_openai_clip,
    'open_clip': convert_open_clip,
    'pe_core': convert_pe_core,
    'ram': convert_ram,
    'siglip': convert_siglip,
}

#: Readers of the side files a zoo model's ``Data Files`` name, by the
#: keyword argument of the converter they fill.
DATA_FILE_READERS: Dict[str, Callable] = {
    'tag_list': read_tag_list,
    'tag_list_chinese': partial(read_tag_list, unique=False),
    'thresholds': read_thresholds,
}


def parse_converter(spec: str) -> Tuple[str, Dict[str, str]]:
    """The key and keyword options of a metafile's ``Converter:``.

    Takes a key with options (``'ram --model ram_plus'``) or, as older
    metafiles write it, the script
    (``'tools/model_converters/ram_to_mmprompt.py --model ram_plus'``).

    Args:
        spec (str): The ``Converter:`` value.

    Returns:
        tuple: A key of :data:`CONVERTERS` and the options as keyword
        arguments (``--model ram_plus`` -> ``{'model': 'ram_plus'}``).

    Raises:
        ConverterError: For an unknown key or options not in pairs.
    """
    words = shlex.split(spec or '')
    key = words[0].rsplit('/', 1)[-1] if words else ''
    if key.endswith('_to_mmprompt.py'):
        key = key[:-len('_to_mmprompt.py')]
    if key not in CONVERTERS:
        raise ConverterError(f'unknown converter {spec!r}; known: '
                             f"{', '.join(CONVERTERS)}")
    options = words[1:]
    if len(options) % 2 or not all(o.startswith('--') for o in options[::2]):
        raise ConverterError(f'converter {spec!r}: options must be '
                             '--name value pairs')
    return key, {
        name[2:].replace('-', '_'): value
        for name, value in zip(options[::2], options[1::2])
    }


def converter_command(spec: str) -> List[str]:
    """The script and options that run a ``Converter:`` by hand."""
    key, options = parse_converter(spec)
    args = [converter_script(key)]
    for name, value in options.items():
        args += ['--' + name.replace('_', '-'), value]
    return args


__all__ = [
    'CONVERTERS', 'DATA_FILE_READERS', 'ConverterError', 'apply_rules',
    'check_family', 'converter_command', 'converter_script',
    'describe_checkpoint', 'identify_checkpoint', 'SCRIPT_DIR',
    'load_source_checkpoint', 'parse_converter', 'save_checkpoint_atomic',
    'swin_unfold_norm', 'swin_unfold_reduction', 'unwrap_state_dict',
    'convert_openai_clip', 'convert_open_clip', 'infer_openai_clip_arch',
    'convert_pe_core', 'infer_pe_core_arch', 'convert_ram', 'convert_siglip',
    'infer_siglip_arch', 'swin_relative_position_index'
]
