# Copyright (c) mmprompt contributors. All rights reserved.
"""An on-disk cache of zero-shot text prototypes, used by the model's
callers (ImageNet with 80 templates is 80,000 prompts to encode)."""
import hashlib
import itertools
import json
import logging
import os.path as osp
import time
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.dist import barrier, broadcast_object_list, get_dist_info
from mmengine.logging import print_log

from mmprompt.utils.checkpoint import tensors_fingerprint
from mmprompt.utils.io import atomic_write

#: Bumped when what a key covers or the file layout changes.
CACHE_FORMAT = 1


def text_tower_fingerprint(model: nn.Module) -> str:
    """SHA-256 hex digest of what a CLIP model's text prototypes depend on
    in ``model``: the text tower's weights (in their dtypes), the tokenizer.
    """
    tokenizer = torch.tensor(list(repr(model.tokenizer).encode()))
    return tensors_fingerprint(
        list(model.text_encoder.state_dict().items()) +
        [('tokenizer', tokenizer)])


#: Prompts timed for an estimate, and the fewest worth one.
PROBE_PROMPTS = 64
ESTIMATE_FROM = 4096


def estimate_build_time(model: nn.Module, categories: Sequence[str],
                        templates: Sequence[str], prompts: int) -> str:
    """``', about N min'`` (or s) for ``model`` (a ``CLIPZeroShot``) to
    encode ``prompts`` prompts, timed on :data:`PROBE_PROMPTS` of
    ``categories`` x ``templates`` without prefix sharing (so it errs long);
    ``''`` below :data:`ESTIMATE_FROM`."""
    if prompts < ESTIMATE_FROM:
        return ''
    sample = list(
        itertools.islice((t.format(c) for c in categories
                          for t in templates), PROBE_PROMPTS))
    tokens = model.tokenize(sample, truncate=True)
    length = int((tokens != model.pad_id).sum(1).max())
    tokens = tokens[:, :length].to(model.logit_scale.device)
    start = time.perf_counter()
    with torch.no_grad():
        model.extract_text_feat(tokens)
    seconds = (time.perf_counter() - start) * prompts / len(sample)
    if seconds < 120:
        return f', about {seconds:.0f} s'
    return f', about {seconds / 60:.0f} min'


class PrototypeCache:
    """Text prototypes on disk, one ``<key>.pth`` file per key.

    Under ``torch.distributed`` rank 0 reads and broadcasts, and writes
    alone while the others wait: every rank must call :meth:`load` and
    :meth:`save` (and so :meth:`prototypes`).

    Args:
        cache_dir (str): The folder, created on the first write.

    Example:
        >>> cache = PrototypeCache('work_dirs/prototypes')
        >>> prototypes = cache.prototypes(model, names, templates, {})
        >>> model.set_categories(names, templates, prototypes=prototypes)
    """

    def __init__(self, cache_dir: str) -> None:
        if not cache_dir:
            raise ValueError('PrototypeCache needs a folder')
        self.cache_dir = str(cache_dir)

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.cache_dir!r})'

    @staticmethod
    def key(weights: str, categories: Sequence[str],
            templates: Sequence[str], descriptions: Dict[int, Sequence[str]],
            description_weight: float) -> str:
        """SHA-256 hex digest of everything one classifier's prototypes
        depend on: ``weights`` (:func:`text_tower_fingerprint`), the
        categories, templates, descriptions and (with descriptions)
        ``description_weight``."""
        payload = json.dumps(
            dict(
                format=CACHE_FORMAT,
                weights=weights,
                categories=list(categories),
                templates=list(templates),
                descriptions={
                    str(k): list(v)
                    for k, v in descriptions.items()
                },
                description_weight=float(description_weight)
                if descriptions else None),
            sort_keys=True,
            ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()

    def path(self, key: str) -> str:
        """str: The file of ``key``."""
        return osp.join(self.cache_dir, f'{key}.pth')

    def load(self, key: str) -> Optional[torch.Tensor]:
        """``(C, D)`` prototypes on the CPU stored under ``key``, or None if
        there are none (or the file is unreadable, which is logged)."""
        rank, world_size = get_dist_info()
        if world_size == 1:
            return self._read(key)
        found = [self._read(key) if rank == 0 else None]
        broadcast_object_list(found, src=0)
        return found[0]

    def _read(self, key: str) -> Optional[torch.Tensor]:
        path = self.path(key)
        if not osp.isfile(path):
            return None
        try:
            obj = torch.load(path, map_location='cpu', weights_only=True)
            if obj.get('key') != key:
                raise ValueError('key mismatch')
            return obj['prototypes']
        except Exception as e:  # noqa: BLE001 - a bad cache file is rebuilt
            print_log(f'ignoring unreadable prototype cache {path} ({e})',
                      logger='current', level=logging.WARNING)
            return None

    def save(self, key: str, prototypes: torch.Tensor) -> str:
        """Store ``(C, D)`` prototypes under ``key`` atomically; returns the
        path."""
        path = self.path(key)
        rank, world_size = get_dist_info()
        if rank == 0:
            with atomic_write(path) as f:
                torch.save(
                    dict(key=key, prototypes=prototypes.detach().cpu()), f)
        if world_size > 1:
            barrier()
        return path

    def prototypes(self, model: nn.Module, categories: Sequence[str],
                   templates: Sequence[str],
                   descriptions: Dict[int, Sequence[str]]) -> torch.Tensor:
        """The prototypes of a zero-shot CLIP: read, or built by
        :meth:`CLIPZeroShot.build_prototypes` and stored.

        Args:
            model (CLIPZeroShot): The model.
            categories (Sequence[str]): Category names in label order.
            templates (Sequence[str]): Resolved templates.
            descriptions (dict): Label -> descriptions.

        Returns:
            torch.Tensor: ``(C, D)`` unit rows, on the model's device.
        """
        key = self.key(
            text_tower_fingerprint(model), categories, templates,
            descriptions, model.description_weight)
        cached = self.load(key)
        if cached is not None and cached.shape == (len(categories),
                                                   model.proj_dims):
            print_log(f'Text prototypes read from the cache ({key[:12]})',
                      logger='current')
            return cached.to(model.logit_scale)
        prompts = len(categories) * len(templates) + sum(
            len(d) for d in descriptions.values())
        print_log(
            f'Text prototypes are not cached yet: encoding {prompts} prompts '
            f'once{estimate_build_time(model, categories, templates, prompts)}'
            f', before the evaluation, into {self.path(key)}',
            logger='current')
        start = time.perf_counter()
        prototypes = model.build_prototypes(categories, templates,
                                            descriptions)
        seconds = time.perf_counter() - start
        self.save(key, prototypes)
        print_log(
            f'Text prototypes built in {seconds:.1f} s '
            f'({prompts / max(seconds, 1e-9):.0f} prompts/s), not counted '
            'in the evaluation speed',
            logger='current')
        return prototypes
