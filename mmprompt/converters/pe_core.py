# Copyright (c) mmprompt contributors. All rights reserved.
"""Convert open_clip's PE-Core checkpoints (``timm/PE-Core-*`` on the
Hugging Face Hub) to mmprompt's :class:`CLIP`."""
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch

from .common import ConverterError, unwrap_state_dict, with_meta
from .families import describe_checkpoint
from .rules import apply_rules, clip_text_block_rules, timm_vit_rules
from .siglip import _count_blocks

MODEL_NAME = 'PE-Core (open_clip layout)'
SOURCE = 'pe_core'

_V = r'visual\.trunk\.'
_WB = r'(weight|bias)'

RULES = [
    # Image tower: timm's Eva -> PEVisionTransformer.
    (_V + r'(cls_token|pos_embed)', r'visual.\1', None),
    (_V + r'patch_embed\.proj\.weight', 'visual.patch_embed.projection.weight',
     None),
    (_V + r'norm_pre\.' + _WB, r'visual.pre_norm.\1', None),
    *timm_vit_rules(_V),
    (_V + r'head\.' + _WB, r'visual_proj.\1', None),
    # Text tower: open_clip's TextTransformer, its names under text_encoder.
    (r'text\.(token_embedding\.weight|positional_embedding|text_projection)',
     r'text_encoder.\1', None),
    *clip_text_block_rules(r'text\.'),
    (r'logit_scale', 'logit_scale', None),
]

DROP = [
    # Buffers rebuilt from the config: causal mask, RoPE tables.
    r'text\.attn_mask',
    r'visual\.trunk\.rope\.(bands|pos_embed)',
]

# Keys every PE-Core checkpoint has, with their number of dimensions.
REQUIRED = {
    'visual.trunk.pos_embed': 3,
    'visual.trunk.patch_embed.proj.weight': 4,
    'visual.trunk.attn_pool.latent': 3,
    'visual.trunk.head.weight': 2,
    'text.token_embedding.weight': 2,
    'text.positional_embedding': 2,
    'text.text_projection': 2,
    'logit_scale': 0,
}


def infer_pe_core_arch(state_dict: Dict[str, torch.Tensor]) -> dict:
    """Read the architecture of a PE-Core checkpoint from its shapes.

    Args:
        state_dict (dict): open_clip keys to tensors.

    Returns:
        dict: Widths, layers, sizes and lengths, all ints.

    Raises:
        ConverterError: If it is not one, naming what it is if known.
    """
    missing = [k for k in REQUIRED if k not in state_dict]
    if missing:
        what = describe_checkpoint(state_dict)
        why = (f'this is {what}'
               if what else f"missing {', '.join(missing[:3])}")
        raise ConverterError(f'not a {MODEL_NAME} checkpoint: {why}')
    for key, ndim in REQUIRED.items():
        if state_dict[key].dim() != ndim:
            raise ConverterError(
                f'not a {MODEL_NAME} checkpoint: {key} has shape '
                f'{tuple(state_dict[key].shape)}, expected {ndim} dims')
    conv = state_dict['visual.trunk.patch_embed.proj.weight']
    grid = round((state_dict['visual.trunk.pos_embed'].shape[1] - 1)**0.5)
    text_proj = state_dict['text.text_projection']
    return dict(
        vision_width=int(conv.shape[0]),
        vision_layers=_count_blocks(state_dict, 'visual.trunk.blocks.'),
        patch_size=int(conv.shape[-1]),
        image_size=int(conv.shape[-1] * grid),
        embed_dim=int(state_dict['visual.trunk.head.weight'].shape[0]),
        text_width=int(text_proj.shape[0]),
        text_layers=_count_blocks(state_dict, 'text.transformer.resblocks.'),
        context_length=int(state_dict['text.positional_embedding'].shape[0]),
        vocab_size=int(state_dict['text.token_embedding.weight'].shape[0]))


def convert_pe_core(
    checkpoint: Dict[str, torch.Tensor],
    dtype: Optional[torch.dtype] = torch.float32,
) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """Map an open_clip PE-Core state dict to mmprompt's :class:`CLIP`
    by :data:`RULES` and :data:`DROP`. Pure: the input is untouched.

    Args:
        checkpoint (dict): open_clip keys to tensors, or a dict wrapping
            them (see :func:`~mmprompt.converters.common.unwrap_state_dict`).
        dtype (torch.dtype, optional): Type of the floating-point outputs;
            None keeps the source's. Defaults to ``torch.float32``.

    Returns:
        tuple: The converted ``OrderedDict`` and its meta (see
        :func:`~mmprompt.converters.common.with_meta`).

    Raises:
        ConverterError: If the state dict is not a PE-Core checkpoint.
    """
    state_dict = unwrap_state_dict(checkpoint)
    arch = infer_pe_core_arch(state_dict)
    converted, dropped = apply_rules(
        state_dict, RULES, DROP, model_name=MODEL_NAME)
    return with_meta(converted, dropped, arch, SOURCE, dtype)
