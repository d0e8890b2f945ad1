# Copyright (c) mmprompt contributors. All rights reserved.
"""Convert open_clip's CLIP ViT checkpoints (OpenAI's keys; head counts
by size, as ViT-H/14's 16 heads are of 80 channels) to :class:`CLIP`."""
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch

from .common import ConverterError, unwrap_state_dict
from .families import check_family
from .openai_clip import convert_openai_clip, infer_openai_clip_arch

SOURCE = 'open_clip'
MODEL_NAME = 'CLIP ViT (open_clip layout)'

#: open_clip sizes with configs: their shapes and head counts.
SIZES: Dict[str, dict] = {
    'ViT-B-32': dict(vision_width=768, vision_layers=12, patch_size=32,
                     text_width=512, text_layers=12, vision_heads=12,
                     text_heads=8),
    'ViT-B-16': dict(vision_width=768, vision_layers=12, patch_size=16,
                     text_width=512, text_layers=12, vision_heads=12,
                     text_heads=8),
    'ViT-L-14': dict(vision_width=1024, vision_layers=24, patch_size=14,
                     text_width=768, text_layers=12, vision_heads=16,
                     text_heads=12),
    'ViT-H-14': dict(vision_width=1280, vision_layers=32, patch_size=14,
                     text_width=1024, text_layers=24, vision_heads=16,
                     text_heads=16),
    'ViT-bigG-14': dict(vision_width=1664, vision_layers=48, patch_size=14,
                        text_width=1280, text_layers=32, vision_heads=16,
                        text_heads=20),
}

_SHAPE_KEYS = ('vision_width', 'vision_layers', 'patch_size', 'text_width',
               'text_layers')


def open_clip_size(arch: dict) -> str:
    """The key of :data:`SIZES` of an architecture read from the weights.

    Args:
        arch (dict): From :func:`infer_openai_clip_arch`.
    """
    shape = {k: arch[k] for k in _SHAPE_KEYS}
    for name, size in SIZES.items():
        if all(size[k] == v for k, v in shape.items()):
            return name
    raise ConverterError(
        f"an open_clip ViT of a size mmprompt's zoo does not have (image "
        f"tower {arch['vision_width']} x {arch['vision_layers']}, patch "
        f"{arch['patch_size']}; text tower {arch['text_width']} x "
        f"{arch['text_layers']}); sizes: {', '.join(SIZES)}")


def convert_open_clip(
    checkpoint: Dict[str, torch.Tensor],
    dtype: Optional[torch.dtype] = torch.float32,
) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """:func:`convert_openai_clip` with the head counts of the size
    (:func:`open_clip_size`, also in the meta's ``size``). Pure: no I/O.

    Args:
        checkpoint (dict): Keys to tensors, possibly wrapped.
        dtype (torch.dtype, optional): Type of the floating-point outputs;
            None keeps the source's. Defaults to ``torch.float32``.
    """
    state_dict = unwrap_state_dict(checkpoint)
    check_family(state_dict, 'clip_vit', MODEL_NAME)
    size = open_clip_size(infer_openai_clip_arch(state_dict))
    converted, meta = convert_openai_clip(state_dict, dtype)
    heads = {k: v for k, v in SIZES[size].items() if k.endswith('_heads')}
    meta.update(source=SOURCE, size=size, arch=dict(meta['arch'], **heads))
    return converted, meta
