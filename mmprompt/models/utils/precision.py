# Copyright (c) mmprompt contributors. All rights reserved.
"""Inference in fp16 / bf16 for the heavy towers of a frozen model; what
decides an answer (projections, scales, prototypes, thresholds) stays fp32.
"""
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn as nn

from .fast_attention import enable_sdpa

PRECISIONS: Dict[str, torch.dtype] = {
    'fp32': torch.float32,
    'fp16': torch.float16,
    'bf16': torch.bfloat16,
}


def _cast_floats(obj: Any, dtype: torch.dtype) -> Any:
    if torch.is_tensor(obj):
        return obj.to(dtype) if obj.is_floating_point() else obj
    if isinstance(obj, (tuple, list)):
        return type(obj)(_cast_floats(o, dtype) for o in obj)
    if isinstance(obj, dict):
        return {k: _cast_floats(v, dtype) for k, v in obj.items()}
    return obj


def _default_modules(model: nn.Module) -> List[str]:
    names = getattr(model, 'low_precision_modules', None)
    if names is not None:
        return list(names)
    return [
        name for name, child in model.named_children()
        if name != 'data_preprocessor' and any(
            True for _ in child.parameters())
    ]


def _autocast_forward(module: nn.Module, dtype: torch.dtype):
    forward = module.forward

    def wrapped(*args, **kwargs):
        device_type = next(module.parameters()).device.type
        with torch.autocast(device_type, dtype=dtype):
            out = forward(*args, **kwargs)
        return _cast_floats(out, torch.float32)

    return wrapped


def apply_precision(model: nn.Module,
                    precision: str = 'fp32',
                    modules: Optional[Sequence[str]] = None,
                    fast_attention: Optional[bool] = None,
                    strategy: str = 'cast') -> nn.Module:
    """Run ``model``'s heavy submodules in ``precision``, in place.

    ``'cast'`` casts the weights once (cheaper than autocast's per-op casts
    on a GPU) and hooks the tower to cast floating inputs to its dtype and
    outputs back to fp32. A cast ``nn.ModuleList`` gets no hooks (it is
    never called): its owner runs the blocks in their dtype.

    Args:
        model (nn.Module): A built model (CLIP, RAM, ...).
        precision (str): ``'fp32'``, ``'fp16'`` or ``'bf16'``.
            Defaults to ``'fp32'`` (nothing is cast).
        modules (Sequence[str], optional): Names of the submodules to cast
            (dotted paths allowed). Defaults to the model's
            ``low_precision_modules``, or else every direct child with
            parameters but the data preprocessor.
        fast_attention (bool, optional): Apply :func:`enable_sdpa`.
            Defaults to True for fp16 / bf16 (fp32 stays bit for bit).
        strategy (str): ``'cast'`` or ``'autocast'`` (``torch.autocast``
            around each tower's forward). Defaults to ``'cast'``.

    Returns:
        nn.Module: ``model`` itself.
    """
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {sorted(PRECISIONS)}, '
                         f'got {precision!r}')
    if strategy not in ('cast', 'autocast'):
        raise ValueError("strategy must be 'cast' or 'autocast', got "
                         f'{strategy!r}')
    dtype = PRECISIONS[precision]
    if fast_attention is None:
        fast_attention = dtype is not torch.float32
    if fast_attention:
        enable_sdpa(model)
    if dtype is torch.float32:
        return model
    names = list(modules) if modules is not None else _default_modules(model)
    for name in names:
        child = model.get_submodule(name)
        if getattr(child, '_mmprompt_precision', None) is not None:
            raise RuntimeError(f'{name} is already cast to '
                               f'{child._mmprompt_precision}')
        child._mmprompt_precision = precision
        if strategy == 'autocast':
            for part in (child if isinstance(child, nn.ModuleList) else
                         [child]):
                part.forward = _autocast_forward(part, dtype)
            continue
        child.to(dtype)
        if isinstance(child, nn.ModuleList):
            continue
        child.register_forward_pre_hook(
            lambda m, args, kwargs, dt=dtype:
            (_cast_floats(args, dt), _cast_floats(kwargs, dt)),
            with_kwargs=True)
        child.register_forward_hook(
            lambda m, args, out: _cast_floats(out, torch.float32))
    return model
