# Copyright (c) mmprompt contributors. All rights reserved.
"""The one-call API. Each name imports its module (and torch) on first use
(PEP 562), so ``import mmprompt.apis`` is fast."""
import importlib
from typing import Any

#: Public name -> the submodule that defines it.
_SOURCES = {
    'get_checkpoint': 'hub',
    'ImageTagger': 'image_tagger',
    'build_tagging_model': 'image_tagger',
    'ModelInfo': 'model_zoo',
    'get_model': 'builder',
    'get_model_info': 'model_zoo',
    'list_models': 'model_zoo',
    'ZeroShotClassifier': 'zero_shot_classifier',
    'build_zero_shot_model': 'zero_shot_classifier',
}

__all__ = list(_SOURCES)


def __getattr__(name: str) -> Any:
    if name not in _SOURCES:
        raise AttributeError(
            f'module {__name__!r} has no attribute {name!r}')
    value = getattr(
        importlib.import_module(f'.{_SOURCES[name]}', __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))
