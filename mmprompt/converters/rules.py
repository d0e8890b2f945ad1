# Copyright (c) mmprompt contributors. All rights reserved.
"""The converters' rule engine: a ``RULES`` table of ``(anchored regex,
replacement, transform)`` and a ``DROP`` list, applied by
:func:`apply_rules`."""
import re
from collections import OrderedDict
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from .common import ConverterError

Transform = Optional[Callable[[torch.Tensor], torch.Tensor]]
Rule = Tuple[str, str, Transform]

_WB = r'(weight|bias)'


def timm_vit_rules(src: str = r'visual\.trunk\.') -> List[Rule]:
    """Rules of a timm ViT (open_clip's SigLIP and PE-Core towers) ->
    MMPreTrain's ``VisionTransformer`` under ``visual.``; the attention
    pool keeps timm's names, as :class:`~mmprompt.models.utils.AttentionPool`.

    Args:
        src (str): Regex of the tower's prefix. Defaults to ``visual.trunk.``.
    """
    block = src + r'blocks\.(\d+)\.'
    return [
        (block + r'norm([12])\.' + _WB, r'visual.layers.\1.ln\2.\3', None),
        (block + r'attn\.(qkv|proj)\.' + _WB, r'visual.layers.\1.attn.\2.\3',
         None),
        (block + r'mlp\.fc1\.' + _WB, r'visual.layers.\1.ffn.layers.0.0.\2',
         None),
        (block + r'mlp\.fc2\.' + _WB, r'visual.layers.\1.ffn.layers.1.\2',
         None),
        (src + r'norm\.' + _WB, r'visual.ln1.\1', None),
        (src + r'attn_pool\.(latent|(?:q|kv|proj|norm|mlp\.fc[12])\.'
         r'(?:weight|bias))', r'visual.attn_pool.\1', None),
    ]


def clip_text_block_rules(src: str = '') -> List[Rule]:
    """Rules of OpenAI's text blocks and final norm, to ``text_encoder.``.

    Args:
        src (str): The regex of the tower's prefix (``text\\.`` for
            open_clip's custom text towers). Defaults to ``''``.
    """
    return [
        (src + r'transformer\.resblocks\.(\d+)\.((?:ln_[12]|attn\.out_proj|'
         r'mlp\.c_fc|mlp\.c_proj)\.(?:weight|bias)|attn\.in_proj_'
         r'(?:weight|bias))', r'text_encoder.resblocks.\1.\2', None),
        (src + r'ln_final\.' + _WB, r'text_encoder.ln_final.\1', None),
    ]


def apply_rules(
    state_dict: Dict[str, torch.Tensor],
    rules: Sequence[Rule],
    drop: Iterable[str] = (),
    model_name: str = 'model',
) -> Tuple['OrderedDict[str, torch.Tensor]', List[str]]:
    """Map every key by the first matching rule; refuse (naming them) keys
    neither mapped nor dropped, and two keys mapped to one name.

    Args:
        state_dict (dict): Source tensors.
        rules (Sequence[tuple]): ``(pattern, replacement, transform)``: a
            ``re.fullmatch`` regex, its ``re.sub`` replacement, a transform.
        drop (Iterable[str]): Regexes of keys dropped on purpose.
        model_name (str): Name used in error messages.

    Returns:
        tuple: The converted ``OrderedDict`` and the sorted dropped keys.
    """
    compiled = [(re.compile(p), r, t) for p, r, t in rules]
    dropped_res = [re.compile(p) for p in drop]
    out = OrderedDict()
    dropped, unknown = [], []
    for key, value in state_dict.items():
        for regex, repl, transform in compiled:
            if regex.fullmatch(key):
                new_key = regex.sub(repl, key)
                if new_key in out:
                    raise ConverterError(
                        f'{model_name}: two keys map to {new_key!r}')
                out[new_key] = transform(value) if transform else value
                break
        else:
            if any(r.fullmatch(key) for r in dropped_res):
                dropped.append(key)
            else:
                unknown.append(key)
    if unknown:
        shown = ', '.join(unknown[:10])
        more = f' and {len(unknown) - 10} more' if len(unknown) > 10 else ''
        raise ConverterError(
            f'not a {model_name} checkpoint: {len(unknown)} unknown '
            f'key(s): {shown}{more}')
    return out, sorted(dropped)
