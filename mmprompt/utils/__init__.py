# Copyright (c) mmprompt contributors. All rights reserved.
from .errors import (CheckpointError, ImageDecodeError, InputTypeError,
                     InvalidInputError, NonFiniteScoresError, OutputPathError,
                     UserError, run_tool)
from . import checkpoint  # noqa: F401 - registers the .safetensors loader
from .io import atomic_write, check_output, read_lines
from .scores import check_finite_scores
from .setup_env import register_all_modules

__all__ = [
    'register_all_modules', 'UserError', 'InvalidInputError', 'InputTypeError',
    'CheckpointError', 'ImageDecodeError', 'OutputPathError', 'run_tool',
    'atomic_write', 'check_output', 'read_lines', 'NonFiniteScoresError',
    'check_finite_scores'
]
