# Copyright (c) mmprompt contributors. All rights reserved.
"""The declarative rule engine of the converters.

A converter is a ``RULES`` table of ``(anchored regex, replacement, optional
tensor transform)`` and a ``DROP`` list; :func:`apply_rules` maps every
source key by the first rule that matches it, drops the keys ``DROP`` names
on purpose and refuses any other key, naming it, and any two keys that
would land on the same name.
"""
import re
from collections import OrderedDict
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from .common import ConverterError

Transform = Optional[Callable[[torch.Tensor], torch.Tensor]]
Rule = Tuple[str, str, Transform]


def apply_rules(
    state_dict: Dict[str, torch.Tensor],
    rules: Sequence[Rule],
    drop: Iterable[str] = (),
    model_name: str = 'model',
) -> Tuple['OrderedDict[str, torch.Tensor]', List[str]]:
    """Map every key of ``state_dict`` by the first rule whose regex matches.

    Args:
        state_dict (dict): Source tensors.
        rules (Sequence[tuple]): ``(pattern, replacement, transform)``: an
            anchored regex (``re.fullmatch``), its replacement (``\\1``
            groups allowed) and an optional tensor transform.
        drop (Iterable[str]): Regexes (``re.fullmatch``) of keys dropped on
            purpose.
        model_name (str): Name used in error messages.

    Returns:
        tuple: The converted ``OrderedDict`` and the sorted dropped keys.

    Raises:
        ConverterError: If a key is neither mapped nor dropped, or two keys
            map to the same target.
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
