# Copyright (c) mmprompt contributors. All rights reserved.
"""Convert OpenAI CLIP ViT checkpoints (and open_clip's, same keys) to
mmprompt's :class:`CLIP`: the image tower becomes MMPreTrain's
``VisionTransformer``, the text tower keeps OpenAI's names."""
import re
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch

from .common import ConverterError, unwrap_state_dict, with_meta
from .families import check_family
from .rules import apply_rules, clip_text_block_rules

MODEL_NAME = 'CLIP ViT (OpenAI layout)'
SOURCE = 'openai_clip'

_V_BLOCK = r'visual\.transformer\.resblocks\.(\d+)\.'
_WB = r'(weight|bias)'


def _to_cls_token(t: torch.Tensor) -> torch.Tensor:
    """``class_embedding`` ``(C,)`` -> ``cls_token`` ``(1, 1, C)``."""
    return t.reshape(1, 1, -1)


def _to_pos_embed(t: torch.Tensor) -> torch.Tensor:
    """``positional_embedding`` ``(L, C)`` -> ``pos_embed`` ``(1, L, C)``."""
    return t.unsqueeze(0)


def _to_linear_weight(t: torch.Tensor) -> torch.Tensor:
    """``x @ proj`` with ``proj (C, D)`` -> ``nn.Linear`` weight ``(D, C)``."""
    return t.t().contiguous()


RULES = [
    (r'visual\.class_embedding', 'visual.cls_token', _to_cls_token),
    (r'visual\.positional_embedding', 'visual.pos_embed', _to_pos_embed),
    (r'visual\.conv1\.weight', 'visual.patch_embed.projection.weight', None),
    (r'visual\.ln_pre\.' + _WB, r'visual.pre_norm.\1', None),
    (_V_BLOCK + r'ln_([12])\.' + _WB, r'visual.layers.\1.ln\2.\3', None),
    (_V_BLOCK + r'attn\.in_proj_' + _WB, r'visual.layers.\1.attn.qkv.\2',
     None),
    (_V_BLOCK + r'attn\.out_proj\.' + _WB, r'visual.layers.\1.attn.proj.\2',
     None),
    (_V_BLOCK + r'mlp\.c_fc\.' + _WB, r'visual.layers.\1.ffn.layers.0.0.\2',
     None),
    (_V_BLOCK + r'mlp\.c_proj\.' + _WB, r'visual.layers.\1.ffn.layers.1.\2',
     None),
    (r'visual\.ln_post\.' + _WB, r'visual.ln1.\1', None),
    (r'visual\.proj', 'visual_proj.weight', _to_linear_weight),
    (r'(token_embedding\.weight|positional_embedding|text_projection)',
     r'text_encoder.\1', None),
    *clip_text_block_rules(),
    (r'logit_scale', 'logit_scale', None),
]

DROP = [
    # TorchScript hyper-parameters (the shapes say them) and the causal
    # mask of older open_clip exports (the text tower uses is_causal).
    r'input_resolution',
    r'context_length',
    r'vocab_size',
    r'attn_mask',
]

# Keys whose shapes give the architecture, with their number of dimensions.
REQUIRED = {
    'visual.class_embedding': 1,
    'visual.positional_embedding': 2,
    'visual.conv1.weight': 4,
    'visual.proj': 2,
    'token_embedding.weight': 2,
    'positional_embedding': 2,
    'ln_final.weight': 1,
    'text_projection': 2,
    'logit_scale': 0,
}


def _count_blocks(state_dict: Dict[str, torch.Tensor], prefix: str) -> int:
    """Number of ``<prefix>N.`` blocks, checking that N runs 0..n-1."""
    regex = re.compile(re.escape(prefix) + r'(\d+)\.')
    ids = {int(m.group(1)) for m in map(regex.match, state_dict) if m}
    if ids != set(range(len(ids))) or not ids:
        raise ConverterError(f'not a {MODEL_NAME} checkpoint: blocks '
                             f'{prefix}N are {sorted(ids)}, not 0..n-1')
    return len(ids)


def infer_openai_clip_arch(state_dict: Dict[str, torch.Tensor]) -> dict:
    """The architecture (a dict of ints) of an OpenAI ViT CLIP from its
    tensor shapes (one head per 64 channels, OpenAI's rule).

    Args:
        state_dict (dict): OpenAI keys to tensors.
    """
    missing = [k for k in REQUIRED if k not in state_dict]
    if missing:
        raise ConverterError(f'not a {MODEL_NAME} checkpoint: missing '
                             f"{', '.join(missing)}")
    for key, ndim in REQUIRED.items():
        if state_dict[key].dim() != ndim:
            raise ConverterError(
                f'not a {MODEL_NAME} checkpoint: {key} has shape '
                f'{tuple(state_dict[key].shape)}, expected {ndim} dims')
    conv = state_dict['visual.conv1.weight']
    vision_width, patch_size = conv.shape[0], conv.shape[-1]
    grid = round((state_dict['visual.positional_embedding'].shape[0] - 1)**0.5)
    vision_proj = state_dict['visual.proj']
    text_proj = state_dict['text_projection']
    text_width = state_dict['ln_final.weight'].shape[0]
    if (vision_proj.shape[0] != vision_width
            or text_proj.shape[0] != text_width
            or vision_proj.shape[1] != text_proj.shape[1]):
        raise ConverterError(
            f'not a {MODEL_NAME} checkpoint: projection shapes '
            f'{tuple(vision_proj.shape)} and {tuple(text_proj.shape)} do '
            f'not match widths {vision_width} and {text_width}')
    return dict(
        vision_width=int(vision_width),
        vision_layers=_count_blocks(state_dict,
                                    'visual.transformer.resblocks.'),
        vision_heads=int(vision_width) // 64,
        patch_size=int(patch_size),
        image_size=int(patch_size * grid),
        embed_dim=int(text_proj.shape[1]),
        text_width=int(text_width),
        text_layers=_count_blocks(state_dict, 'transformer.resblocks.'),
        text_heads=int(text_width) // 64,
        context_length=int(state_dict['positional_embedding'].shape[0]),
        vocab_size=int(state_dict['token_embedding.weight'].shape[0]))


def convert_openai_clip(
    checkpoint: Dict[str, torch.Tensor],
    dtype: Optional[torch.dtype] = torch.float32,
) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """Map an OpenAI CLIP ViT state dict to mmprompt's :class:`CLIP` by
    :data:`RULES`, after :func:`~mmprompt.converters.families.check_family`.
    Pure: no I/O.

    Args:
        checkpoint (dict): Keys to tensors, possibly wrapped.
        dtype (torch.dtype, optional): Type of the floating-point outputs;
            None keeps the source's. Defaults to ``torch.float32``.

    Returns:
        tuple: The converted ``OrderedDict`` and the meta of
        :func:`~mmprompt.converters.common.with_meta`.
    """
    state_dict = unwrap_state_dict(checkpoint)
    check_family(state_dict, 'clip_vit', MODEL_NAME)
    converted, dropped = apply_rules(
        state_dict, RULES, DROP, model_name=MODEL_NAME)
    arch = infer_openai_clip_arch(state_dict)
    return with_meta(converted, dropped, arch, SOURCE, dtype)
