# Copyright (c) mmprompt contributors. All rights reserved.
"""An on-disk cache of zero-shot text prototypes.

Building the prototypes of ImageNet's 1000 classes with OpenAI's 80
templates encodes 80,000 prompts; a :class:`PrototypeCache` keeps the result
in one file per key, so the next run with the same text tower, categories,
templates and descriptions reads it instead. The model never touches the
cache: its callers do (:class:`~mmprompt.apis.ZeroShotClassifier`, and
:class:`~mmprompt.engine.PrepareZeroShotHook` under ``tools/test.py``), and
hand the prototypes to :meth:`CLIPZeroShot.set_categories
<mmprompt.models.clip.CLIPZeroShot.set_categories>`.

**Many processes.** Under ``torch.distributed`` rank 0 reads a file and
broadcasts what it found, so every rank decides alike (and other nodes need
not see the folder); rank 0 alone writes, atomically, while the others wait.
Every rank must call :meth:`PrototypeCache.load` and
:meth:`PrototypeCache.save` (and so :meth:`PrototypeCache.prototypes`).
"""
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
    """A digest of what a CLIP model's text prototypes depend on in the
    model: the text tower's weights (in their current dtypes) and the
    tokenizer.

    Args:
        model (CLIP): A model with ``text_encoder`` and ``tokenizer``.

    Returns:
        str: A SHA-256 hex digest (:func:`tensors_fingerprint`).
    """
    tokenizer = torch.tensor(list(repr(model.tokenizer).encode()))
    return tensors_fingerprint(
        list(model.text_encoder.state_dict().items()) +
        [('tokenizer', tokenizer)])


#: Prompts encoded to estimate the build time, and the fewest prompts for
#: which an estimate is worth its probe.
PROBE_PROMPTS = 64
ESTIMATE_FROM = 4096


def estimate_build_time(model: nn.Module, categories: Sequence[str],
                        templates: Sequence[str], prompts: int) -> str:
    """``', about N min'`` (or s) for encoding ``prompts`` prompts, timed
    on :data:`PROBE_PROMPTS` of them; ``''`` below :data:`ESTIMATE_FROM`.

    The probe runs one small batch, without the shared-prefix batching of
    the real build, so the estimate errs long.

    Args:
        model (CLIPZeroShot): The model, weights loaded.
        categories (Sequence[str]): Category names.
        templates (Sequence[str]): Templates.
        prompts (int): How many prompts the build encodes.

    Returns:
        str: The phrase, to end a sentence with.
    """
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
        """The key of the prototypes of one classifier.

        Args:
            weights (str): Fingerprint of the text tower
                (:func:`text_tower_fingerprint`).
            categories (Sequence[str]): Category names in label order.
            templates (Sequence[str]): Templates.
            descriptions (dict): Label -> descriptions.
            description_weight (float): Weight of the descriptions (part of
                the key only when there are descriptions).

        Returns:
            str: A SHA-256 hex digest of everything the prototypes depend on.
        """
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
        """The prototypes stored under ``key``, or None if there are none
        (or the file is unreadable, which is logged).

        Args:
            key (str): From :meth:`key`.

        Returns:
            torch.Tensor, optional: ``(C, D)`` prototypes on the CPU.
        """
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
            print_log(
                f'ignoring unreadable prototype cache {path} ({e})',
                logger='current',
                level=logging.WARNING)
            return None

    def save(self, key: str, prototypes: torch.Tensor) -> str:
        """Store prototypes under ``key`` with
        :func:`mmprompt.utils.io.atomic_write`.

        Args:
            key (str): From :meth:`key`.
            prototypes (torch.Tensor): ``(C, D)`` prototypes.

        Returns:
            str: The path written.
        """
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
            model (CLIPZeroShot): The model; its text tower, tokenizer and
                ``description_weight`` are part of the key.
            categories (Sequence[str]): Category names in label order.
            templates (Sequence[str]): Resolved templates.
            descriptions (dict): Label -> descriptions, as
                :func:`~mmprompt.models.clip.prompts.resolve_descriptions`
                gives them.

        Returns:
            torch.Tensor: ``(C, D)`` unit rows, on the model's device.
        """
        key = self.key(
            text_tower_fingerprint(model), categories, templates,
            descriptions, model.description_weight)
        cached = self.load(key)
        if cached is not None and cached.shape == (len(categories),
                                                   model.proj_dims):
            print_log(
                f'Text prototypes read from the cache ({key[:12]})',
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
