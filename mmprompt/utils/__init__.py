# Copyright (c) mmprompt contributors. All rights reserved.
"""Errors, safe file writes and module registration. Names needing torch
import on first use (PEP 562): a tool's ``--help`` does not wait for it."""
import importlib
from typing import Any

from .errors import (CheckpointError, ImageDecodeError, InputTypeError,
                     InvalidInputError, NonFiniteScoresError, OutputPathError,
                     UserError, run_tool)
from .io import atomic_write, check_output, read_lines

#: Name -> submodule of the names imported on first use.
_LAZY = {
    'register_all_modules': 'setup_env',
    'check_finite_scores': 'scores',
}

__all__ = [
    'register_all_modules', 'UserError', 'InvalidInputError', 'InputTypeError',
    'CheckpointError', 'ImageDecodeError', 'OutputPathError', 'run_tool',
    'atomic_write', 'check_output', 'read_lines', 'NonFiniteScoresError',
    'check_finite_scores'
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(
            f'module {__name__!r} has no attribute {name!r}')
    value = getattr(
        importlib.import_module(f'.{_LAZY[name]}', __name__), name)
    globals()[name] = value
    return value
