# Copyright (c) mmprompt contributors. All rights reserved.
"""Checkpoint converters, one module per family, and their zoo keys; names
are imported on first access, so a script's ``--help`` needs no torch."""
import importlib
import shlex
from typing import Callable, Dict, Iterator, List, Mapping, Tuple

_SUBMODULE_NAMES = {
    'common': ('ConverterError', 'load_source_checkpoint', 'read_tag_list',
               'read_thresholds', 'save_checkpoint_atomic',
               'unwrap_state_dict'),
    'families': ('SCRIPT_DIR', 'check_family', 'converter_script',
                 'describe_checkpoint', 'identify_checkpoint'),
    'open_clip': ('convert_open_clip', ),
    'openai_clip': ('convert_openai_clip', 'infer_openai_clip_arch'),
    'pe_core': ('convert_pe_core', 'infer_pe_core_arch'),
    'ram': ('convert_ram', ),
    'rules': ('apply_rules', ),
    'siglip': ('convert_siglip', 'infer_siglip_arch'),
    'swin': ('swin_relative_position_index', 'swin_unfold_norm',
             'swin_unfold_reduction'),
}
#: Public name -> the submodule it is imported from on first access.
_LAZY = {
    name: module
    for module, names in _SUBMODULE_NAMES.items() for name in names
}


def _resolve(module: str, name: str):
    return getattr(importlib.import_module(f'{__name__}.{module}'), name)


class LazyFunctions(Mapping):
    """A read-only ``key -> function`` mapping, imported on lookup.

    Args:
        targets (dict): ``key -> 'module:name'`` (a submodule here).
    """

    def __init__(self, targets: Dict[str, str]) -> None:
        self._targets = dict(targets)

    def __getitem__(self, key: str) -> Callable:
        return _resolve(*self._targets[key].split(':'))

    def __iter__(self) -> Iterator[str]:
        return iter(self._targets)

    def __len__(self) -> int:
        return len(self._targets)


#: ``convert(state_dict, **inputs) -> (converted, meta)`` by metafile
#: ``Converter:`` key ``k`` (``tools/model_converters/k_to_mmprompt.py``).
CONVERTERS: Mapping[str, Callable] = LazyFunctions({
    'openai_clip': 'openai_clip:convert_openai_clip',
    'open_clip': 'open_clip:convert_open_clip',
    'pe_core': 'pe_core:convert_pe_core',
    'ram': 'ram:convert_ram',
    'siglip': 'siglip:convert_siglip',
})


def __getattr__(name: str):
    if name == 'DATA_FILE_READERS':
        return _data_file_readers()
    if name in _LAZY:
        return _resolve(_LAZY[name], name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def _data_file_readers() -> Dict[str, Callable]:
    """Readers of a zoo model's ``Data Files``, by converter argument."""
    from functools import partial

    from .common import read_tag_list, read_thresholds
    return {
        'tag_list': read_tag_list,
        'tag_list_chinese': partial(read_tag_list, unique=False),
        'thresholds': read_thresholds,
    }


def parse_converter(spec: str) -> Tuple[str, Dict[str, str]]:
    """The key of :data:`CONVERTERS` and keyword options of a metafile's
    ``Converter:`` (``--model ram_plus`` -> ``{'model': 'ram_plus'}``).

    Args:
        spec (str): A key with options (``'ram --model ram_plus'``) or the
            script (``'tools/model_converters/ram_to_mmprompt.py ...'``).
    """
    from .common import ConverterError
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
    from .families import converter_script
    key, options = parse_converter(spec)
    args = [converter_script(key)]
    for name, value in options.items():
        args += ['--' + name.replace('_', '-'), value]
    return args


__all__ = [
    'CONVERTERS', 'DATA_FILE_READERS', 'LazyFunctions', 'converter_command',
    'parse_converter', *_LAZY
]
