# Copyright (c) mmprompt contributors. All rights reserved.
"""``torch.compile`` for the frozen towers of a model, in place."""
import functools
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from mmprompt.utils.options import COMPILE_MODES


def check_compile_mode(mode: Optional[str]) -> None:
    """Raise ``ValueError`` unless ``mode`` is None or in
    :data:`COMPILE_MODES`."""
    if mode is not None and mode not in COMPILE_MODES:
        raise ValueError(f'mode must be one of {COMPILE_MODES}, got {mode!r}')


def _default_modules(model: nn.Module) -> List[str]:
    names = getattr(model, 'compile_modules', None)
    if names is None:
        raise TypeError(
            f'{type(model).__name__} names no compile_modules; pass '
            'modules=[...] (names of submodules)')
    return list(names)


def compile_model(model: nn.Module,
                  modules: Optional[Sequence[str]] = None,
                  mode: Optional[str] = None,
                  freeze: bool = True,
                  dynamic: Optional[bool] = False,
                  text: bool = False) -> nn.Module:
    """Compile the heavy, category-independent submodules of ``model``.

    Each submodule's ``forward`` is replaced in place, so names, state-dict
    keys and :func:`~mmprompt.models.utils.apply_precision`'s hooks stay
    (call this after it). What depends on the categories stays eager.

    Args:
        model (nn.Module): A built model with its weights loaded.
        modules (Sequence[str], optional): Names of the submodules to
            compile. Defaults to the model's ``compile_modules``.
        mode (str, optional): ``torch.compile`` mode, one of
            :data:`COMPILE_MODES`. Defaults to None (``'default'``).
        freeze (bool): Inductor's ``freezing`` (weights become graph
            constants: weights changed after the first call are not seen,
            so load them first). Defaults to True.
        dynamic (bool, optional): Passed to ``torch.compile``. Defaults to
            False (one static graph per input shape).
        text (bool): Also compile the model's ``text_compile_modules``.
            Defaults to False.

    Returns:
        nn.Module: ``model`` itself.
    """
    check_compile_mode(mode)
    names = list(modules) if modules is not None else _default_modules(model)
    text_names = getattr(model, 'text_compile_modules', ()) if text else ()
    if text and not text_names:
        raise TypeError(
            f'{type(model).__name__} has no text tower of one input shape '
            'to compile (text_compile_modules); build its prototypes eager')
    names += [n for n in text_names if n not in names]
    children = [(name, model.get_submodule(name)) for name in names]
    for name, child in children:
        if getattr(child, '_mmprompt_compiled', False):
            raise RuntimeError(f'{name} is already compiled')
    for _, child in children:
        _numpy_scalars_to_python(child)
        child.forward = _compiled_forward(child.forward, mode, freeze, dynamic)
        child._mmprompt_compiled = True
    return model


def _numpy_scalars_to_python(module: nn.Module) -> None:
    """Numpy scalar attributes (MMPreTrain's drop-path rates) become Python
    numbers: dynamo's guards on them fail under ``torch.inference_mode``."""
    for m in module.modules():
        for name, value in list(vars(m).items()):
            if isinstance(value, np.generic):
                setattr(m, name, value.item())


def _compiled_forward(forward: Callable, mode: Optional[str], freeze: bool,
                      dynamic: Optional[bool]) -> Callable:
    import torch._inductor.config as inductor_config
    compiled = torch.compile(forward, mode=mode, dynamic=dynamic)

    @functools.wraps(forward)
    def wrapped(*args, **kwargs):
        # Inductor reads ``freezing`` from its global config when it
        # compiles; ``options=`` does not reach it.
        with inductor_config.patch(freezing=freeze):
            return compiled(*args, **kwargs)

    return wrapped
