# Copyright (c) mmprompt contributors. All rights reserved.
"""Convert ``recognize-anything``'s RAM and RAM++ checkpoints to mmprompt's
:class:`RAMNormal` / :class:`RAMPlus` (MMPreTrain's Swin keeps
``relative_position_index`` as a persistent buffer, so it is added)."""
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Tuple

import torch

from .common import MMPROMPT_FORMAT, ConverterError, unwrap_state_dict
from .rules import apply_rules
from .swin import (swin_relative_position_index, swin_unfold_norm,
                   swin_unfold_reduction, swin_window_size)

MODEL_NAME = 'RAM / RAM++ (recognize-anything layout)'
SOURCES = {'ram': 'RAMNormal', 'ram_plus': 'RAMPlus'}
NUM_DESCRIPTIONS = 51
DEFAULT_THRESHOLD = 0.68
# MMPreTrain names the final norm after the last stage (RAM has 4).
LAST_STAGE = 3

_SRC_BLOCK = r'visual_encoder\.layers\.(\d+)\.blocks\.(\d+)\.'
_DST_BLOCK = r'visual_encoder.stages.\1.blocks.\2.'
_HEAD = r'(?:tagging_head|vision_multi)\.encoder\.layer\.(\d+)\.'
_WB = r'(weight|bias)'

RULES = [
    (r'visual_encoder\.patch_embed\.proj\.' + _WB,
     r'visual_encoder.patch_embed.projection.\1', None),
    (r'visual_encoder\.patch_embed\.norm\.' + _WB,
     r'visual_encoder.patch_embed.norm.\1', None),
    (_SRC_BLOCK + r'(norm[12])\.' + _WB, _DST_BLOCK + r'\3.\4', None),
    (_SRC_BLOCK + r'attn\.(qkv|proj)\.' + _WB,
     _DST_BLOCK + r'attn.w_msa.\3.\4', None),
    (_SRC_BLOCK + r'attn\.relative_position_bias_table',
     _DST_BLOCK + 'attn.w_msa.relative_position_bias_table', None),
    (_SRC_BLOCK + r'mlp\.fc1\.' + _WB, _DST_BLOCK + r'ffn.layers.0.0.\3',
     None),
    (_SRC_BLOCK + r'mlp\.fc2\.' + _WB, _DST_BLOCK + r'ffn.layers.1.\3', None),
    (r'visual_encoder\.layers\.(\d+)\.downsample\.reduction\.weight',
     r'visual_encoder.stages.\1.downsample.reduction.weight',
     swin_unfold_reduction),
    (r'visual_encoder\.layers\.(\d+)\.downsample\.norm\.' + _WB,
     r'visual_encoder.stages.\1.downsample.norm.\2', swin_unfold_norm),
    (r'visual_encoder\.norm\.' + _WB,
     f'visual_encoder.norm{LAST_STAGE}.' + r'\1', None),
    # Tagging head (BERT names; older files: vision_multi).
    (_HEAD + r'crossattention\.self\.query\.' + _WB,
     r'tagging_head.layers.\1.cross_attn.q_proj.\2', None),
    (_HEAD + r'crossattention\.self\.key\.' + _WB,
     r'tagging_head.layers.\1.cross_attn.k_proj.\2', None),
    (_HEAD + r'crossattention\.self\.value\.' + _WB,
     r'tagging_head.layers.\1.cross_attn.v_proj.\2', None),
    (_HEAD + r'crossattention\.output\.dense\.' + _WB,
     r'tagging_head.layers.\1.cross_attn.out_proj.\2', None),
    (_HEAD + r'crossattention\.output\.LayerNorm\.' + _WB,
     r'tagging_head.layers.\1.norm1.\2', None),
    (_HEAD + r'intermediate\.dense\.' + _WB, r'tagging_head.layers.\1.fc1.\2',
     None),
    (_HEAD + r'output\.dense\.' + _WB, r'tagging_head.layers.\1.fc2.\2', None),
    (_HEAD + r'output\.LayerNorm\.' + _WB, r'tagging_head.layers.\1.norm2.\2',
     None),
    (r'(image_proj|wordvec_proj|fc)\.' + _WB, r'\1.\2', None),
    (r'(label_embed|reweight_scale)', r'\1', None),
]

DROP = [
    # Buffers recomputed from the window size and resolution.
    r'visual_encoder\..*\.relative_position_index',
    r'visual_encoder\..*\.attn_mask',
    # Captioning only (RAM): the tag encoder, whose layers 0-1 are tied to
    # the tagging head, and the BERT text decoder.
    r'tag_encoder\..*',
    r'text_decoder\..*',
]


def _relative_position_indices(
        converted: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """``relative_position_index`` of every converted Swin block."""
    suffix = 'relative_position_bias_table'
    return OrderedDict((key[:-len(suffix)] + 'relative_position_index',
                        swin_relative_position_index(swin_window_size(table)))
                       for key, table in converted.items()
                       if key.endswith(suffix))


def _detect_model(state_dict: Dict[str, torch.Tensor],
                  model: Optional[str]) -> str:
    """``'ram'`` or ``'ram_plus'``, checked against ``model`` if given."""
    if 'label_embed' not in state_dict:
        raise ConverterError(f'not a {MODEL_NAME} checkpoint: no label_embed')
    found = 'ram_plus' if 'reweight_scale' in state_dict else 'ram'
    if model is not None and model not in SOURCES:
        raise ConverterError(f'unknown model {model!r}; use one of '
                             f'{sorted(SOURCES)}')
    if model is not None and model != found:
        has = 'has' if found == 'ram_plus' else 'has no'
        raise ConverterError(f'asked for {model} but the checkpoint is '
                             f'{found} (it {has} reweight_scale)')
    return found


def _num_classes(rows: int, model: str,
                 tag_list: Optional[Sequence[str]]) -> Tuple[int, int]:
    """Classes and descriptions per class from ``label_embed``'s rows."""
    if tag_list is not None:
        num_classes = len(tag_list)
        if num_classes == 0 or rows % num_classes or (model == 'ram'
                                                      and rows != num_classes):
            raise ConverterError(
                f'the tag list has {num_classes} names but label_embed has '
                f'{rows} rows ({model})')
    elif model == 'ram':
        num_classes = rows
    elif rows % NUM_DESCRIPTIONS == 0:
        num_classes = rows // NUM_DESCRIPTIONS
    else:
        raise ConverterError(f'label_embed has {rows} rows, not a multiple of '
                             f'{NUM_DESCRIPTIONS}; give the tag list')
    return num_classes, rows // num_classes


def _thresholds(thresholds: Optional[Sequence[float]],
                num_classes: int) -> torch.Tensor:
    """Checked per-class thresholds, 0.68 each if None."""
    if thresholds is None:
        return torch.full((num_classes, ), DEFAULT_THRESHOLD)
    values = [float(t) for t in thresholds]
    if len(values) != num_classes:
        raise ConverterError(f'{len(values)} thresholds for {num_classes} '
                             'classes')
    bad = [i for i, t in enumerate(values, 1) if not 0 <= t <= 1]  # or NaN
    if bad:
        raise ConverterError(f'thresholds outside [0, 1] at lines {bad[:10]}')
    return torch.tensor(values, dtype=torch.float32)


def convert_ram(
    checkpoint: Dict[str, torch.Tensor],
    tag_list: Optional[Sequence[str]] = None,
    tag_list_chinese: Optional[Sequence[str]] = None,
    thresholds: Optional[Sequence[float]] = None,
    model: Optional[str] = None,
) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """Map a RAM or RAM++ checkpoint to mmprompt's :class:`RAMNormal` /
    :class:`RAMPlus` by :data:`RULES`. Pure: no I/O.

    Args:
        checkpoint (dict): A state dict, possibly wrapped.
        tag_list (Sequence[str], optional): English tag names, one per
            class (``ram_tag_list.txt``). Defaults to None.
        tag_list_chinese (Sequence[str], optional): Chinese names.
            Defaults to None.
        thresholds (Sequence[float], optional): Per-class thresholds; 0.68
            each if None, as in RAM. Defaults to None.
        model (str, optional): ``'ram'`` or ``'ram_plus'``, checked against
            the keys. Defaults to None (detect).

    Returns:
        tuple: The converted ``OrderedDict`` and the meta.
    """
    state_dict = unwrap_state_dict(checkpoint)
    source = _detect_model(state_dict, model)
    rows = state_dict['label_embed'].shape[0]
    num_classes, num_desc = _num_classes(rows, source, tag_list)
    if tag_list_chinese is not None and len(tag_list_chinese) != num_classes:
        raise ConverterError(
            f'the Chinese tag list has {len(tag_list_chinese)} names for '
            f'{num_classes} classes')
    threshold = _thresholds(thresholds, num_classes)
    converted, dropped = apply_rules(
        state_dict, RULES, DROP, model_name=MODEL_NAME)
    converted.update(_relative_position_indices(converted))
    converted['class_threshold'] = threshold
    meta = dict(
        format=MMPROMPT_FORMAT,
        source=source,
        model=SOURCES[source],
        num_classes=num_classes,
        num_descriptions=num_desc,
        tag_list=None if tag_list is None else list(tag_list),
        tag_list_chinese=None
        if tag_list_chinese is None else list(tag_list_chinese),
        dropped=dropped)
    return converted, meta
