# Copyright (c) mmprompt contributors. All rights reserved.
"""Convert open_clip's CLIP ViT checkpoints to mmprompt's :class:`CLIP`.

open_clip's ``CLIP`` with its own ``VisionTransformer`` and
``TextTransformer`` names its parameters as OpenAI's release does, so the
released files (``open_clip_pytorch_model.bin`` / ``open_clip_model.
safetensors`` on the Hugging Face Hub: LAION-2B, DataComp-1B, Apple's DFN;
MetaCLIP's ``.pt`` files, wrapped in ``state_dict`` with ``module.``
prefixes) go through the OpenAI converter's table
(:data:`mmprompt.converters.openai_clip.RULES`). What differs is what the
weights cannot tell: open_clip's sizes set the head counts (ViT-H/14 has 16
heads of 80 channels, not OpenAI's one head per 64), so the size is looked
up in :data:`SIZES`; the activation (GELU or QuickGELU) and preprocessing
are the config's.
"""
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch

from .common import ConverterError, unwrap_state_dict
from .families import check_family
from .openai_clip import convert_openai_clip, infer_openai_clip_arch

SOURCE = 'open_clip'
MODEL_NAME = 'CLIP ViT (open_clip layout)'

#: The sizes mmprompt has configs for, as open_clip names them: the shapes
#: that tell them apart and the head counts the shapes do not give.
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
    """The open_clip size of an architecture read from the weights.

    Args:
        arch (dict): From :func:`infer_openai_clip_arch`.

    Returns:
        str: A key of :data:`SIZES`.

    Raises:
        ConverterError: For a size mmprompt has no config for, naming the
            sizes it has.
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
    """Map an open_clip CLIP ViT state dict to mmprompt's :class:`CLIP`.

    The keys go through :func:`convert_openai_clip` (every key mapped or
    dropped on purpose); a file of another family is refused first by
    :func:`~mmprompt.converters.families.check_family`, and a size without
    a config by :func:`open_clip_size`. Pure: no I/O, the input is
    untouched.

    Args:
        checkpoint (dict): The loaded checkpoint: keys to tensors, or a dict
            wrapping them under ``'state_dict'`` or ``'model'``
            (``module.`` prefixes stripped).
        dtype (torch.dtype, optional): Type of the floating-point outputs;
            None keeps the source's. Defaults to ``torch.float32``.

    Returns:
        tuple: The converted ``OrderedDict`` and the meta dict of
        :func:`convert_openai_clip`, with ``source`` ``'open_clip'``,
        ``size`` (a key of :data:`SIZES`) and the head counts of that size
        in ``arch``.

    Raises:
        ConverterError: If the state dict is not an open_clip CLIP ViT of a
            size in :data:`SIZES`.
    """
    state_dict = unwrap_state_dict(checkpoint)
    check_family(state_dict, 'clip_vit', MODEL_NAME)
    size = open_clip_size(infer_openai_clip_arch(state_dict))
    converted, meta = convert_openai_clip(state_dict, dtype)
    heads = {k: v for k, v in SIZES[size].items() if k.endswith('_heads')}
    meta.update(source=SOURCE, size=size, arch=dict(meta['arch'], **heads))
    return converted, meta
