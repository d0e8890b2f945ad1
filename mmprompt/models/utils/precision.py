# Copyright (c) mmprompt contributors. All rights reserved.
"""Inference in fp16 / bf16 for the heavy towers of a frozen model.

Two strategies, both confined to the large submodules (the image and text
towers, the tagging head) so that what decides an answer stays fp32:
projections, logit scales, prototypes, thresholds, sigmoid and softmax.

- ``'cast'``: the weights are cast once. Autocast re-casts them on every op;
  on a GPU the one-time cast is the cheaper path. A cast tower gets a forward
  pre-hook that casts its floating inputs to its dtype and a forward hook
  that casts its floating outputs back to fp32, so the code around it does
  not change. A cast ``nn.ModuleList`` is never called, so it gets no
  hooks: its owner runs its blocks in their dtype (the CLIP text tower casts
  to :attr:`~mmprompt.models.clip.CLIPTextTransformer.block_dtype` before
  its blocks and back after them).
- ``'autocast'``: the weights stay fp32 and the tower's forward runs under
  ``torch.autocast``, which keeps LayerNorm and softmax in fp32 (speed and
  accuracy of both strategies: ``docs/benchmarks.md``).
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
    # Every direct child with weights, except the data preprocessor.
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

    Args:
        model (nn.Module): A built model (CLIP, RAM, ...).
        precision (str): ``'fp32'``, ``'fp16'`` or ``'bf16'``.
            Defaults to ``'fp32'`` (nothing is cast).
        modules (Sequence[str], optional): Names of the submodules to cast
            (dotted paths allowed). Defaults to the model's
            ``low_precision_modules`` (CLIP: the image tower and the text
            tower's blocks; RAM: the Swin encoder, the tagging head and the
            category encoder's blocks), or else every direct child with
            parameters but the data preprocessor.
        fast_attention (bool, optional): Switch MMPreTrain's Swin window
            attention to SDPA (:func:`enable_sdpa`). Defaults to True for
            fp16 / bf16; fp32 keeps MMPreTrain's kernels, bit for bit.
        strategy (str): ``'cast'`` (weights cast once) or ``'autocast'``
            (``torch.autocast`` around each tower's forward, on the device
            of its weights at call time). Defaults to ``'cast'``.

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
