# Copyright (c) mmprompt contributors. All rights reserved.
"""Convert open_clip's SigLIP / SigLIP 2 checkpoints (``timm/ViT-*-SigLIP*``
on the Hugging Face Hub) to mmprompt."""
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch

from .common import ConverterError, unwrap_state_dict, with_meta
from .openai_clip import _to_linear_weight
from .rules import apply_rules, clip_text_block_rules, timm_vit_rules

MODEL_NAME = 'SigLIP (open_clip layout)'
SOURCE = 'siglip'

_V = r'visual\.trunk\.'
_WB = r'(weight|bias)'

RULES = [
    # Image tower: timm's ViT -> MMPreTrain's VisionTransformer.
    (_V + r'pos_embed', 'visual.pos_embed', None),
    (_V + r'patch_embed\.proj\.' + _WB, r'visual.patch_embed.projection.\1',
     None),
    *timm_vit_rules(_V),
    # Text tower -> CLIPTextTransformer(causal=False, pool='last', ...).
    (r'text\.(token_embedding\.weight|positional_embedding)',
     r'text_encoder.\1', None),
    *clip_text_block_rules(r'text\.'),
    # nn.Linear weight (D, C) -> x @ proj matrix (C, D): the same transpose.
    (r'text\.text_projection\.weight', 'text_encoder.text_projection',
     _to_linear_weight),
    (r'text\.text_projection\.bias', 'text_encoder.text_projection_bias',
     None),
    (r'logit_(scale|bias)', r'logit_\1', None),
]

# Nothing is dropped: open_clip stores no mask for a bidirectional tower.
DROP = []

# Keys every SigLIP checkpoint has, with their number of dimensions.
REQUIRED = {
    'visual.trunk.pos_embed': 3,
    'visual.trunk.patch_embed.proj.weight': 4,
    'visual.trunk.attn_pool.latent': 3,
    'text.token_embedding.weight': 2,
    'text.positional_embedding': 2,
    'text.text_projection.weight': 2,
    'logit_scale': 0,
    'logit_bias': 0,
}


def _count_blocks(state_dict: Dict[str, torch.Tensor], prefix: str) -> int:
    """Number of distinct ``<prefix>N.`` blocks."""
    return len({
        k[len(prefix):].split('.')[0]
        for k in state_dict if k.startswith(prefix)
    })


def infer_siglip_arch(state_dict: Dict[str, torch.Tensor]) -> dict:
    """The shapes a SigLIP checkpoint fixes, to check a config against.

    Args:
        state_dict (dict): open_clip keys to tensors.

    Returns:
        dict: Widths, layers, sizes and lengths, all ints.
    """
    for key, ndim in REQUIRED.items():
        if key not in state_dict or state_dict[key].dim() != ndim:
            raise ConverterError(f'not a {MODEL_NAME} checkpoint: {key} is '
                                 f'missing or not {ndim}-dimensional')
    conv = state_dict['visual.trunk.patch_embed.proj.weight']
    grid = round(state_dict['visual.trunk.pos_embed'].shape[1]**0.5)
    token = state_dict['text.token_embedding.weight']
    return dict(
        vision_width=int(conv.shape[0]),
        patch_size=int(conv.shape[-1]),
        image_size=int(conv.shape[-1] * grid),
        vision_layers=_count_blocks(state_dict, 'visual.trunk.blocks.'),
        embed_dim=int(state_dict['text.text_projection.weight'].shape[0]),
        text_width=int(token.shape[1]),
        text_layers=_count_blocks(state_dict, 'text.transformer.resblocks.'),
        context_length=int(state_dict['text.positional_embedding'].shape[0]),
        vocab_size=int(token.shape[0]))


def convert_siglip(
    checkpoint: Dict[str, torch.Tensor],
    dtype: Optional[torch.dtype] = torch.float32,
) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """Map an open_clip SigLIP / SigLIP 2 state dict to mmprompt's
    :class:`SigLIP` by :data:`RULES`. Pure: the input is untouched.

    Args:
        checkpoint (dict): open_clip keys to tensors, or a dict wrapping
            them (see :func:`~mmprompt.converters.common.unwrap_state_dict`).
        dtype (torch.dtype, optional): Type of the floating-point outputs;
            None keeps the source's. Defaults to ``torch.float32``.

    Returns:
        tuple: The converted ``OrderedDict`` and its meta (see
        :func:`~mmprompt.converters.common.with_meta`).

    Raises:
        ConverterError: If the state dict is not an open_clip SigLIP.
    """
    state_dict = unwrap_state_dict(checkpoint)
    arch = infer_siglip_arch(state_dict)
    converted, dropped = apply_rules(
        state_dict, RULES, DROP, model_name=MODEL_NAME)
    return with_meta(converted, dropped, arch, SOURCE, dtype)
