# Copyright (c) mmprompt contributors. All rights reserved.
"""What ``tools/train.py --resume`` needs to continue a killed run exactly:
the same random stream per epoch, and checkpoints a weights-only load
reads."""
import logging
import random
from functools import partial
from typing import Any

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer, print_log

from mmprompt.registry import HOOKS

_BUFFER = '__mmprompt_history_buffer__'
_ARRAY = '__mmprompt_ndarray__'


def to_plain(value: Any) -> Any:
    """``HistoryBuffer`` / numpy values as tensors, numbers and dicts."""
    if isinstance(value, HistoryBuffer):
        log, count = value.data
        return {
            _BUFFER: True,
            'log_history': to_plain(log),
            'count_history': to_plain(count),
            'max_length': int(value.max_length)
        }
    if isinstance(value, np.ndarray):
        return {_ARRAY: torch.from_numpy(np.ascontiguousarray(value).copy())}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return type(value)((k, to_plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(to_plain(v) for v in value)
    return value


def from_plain(value: Any) -> Any:
    """The inverse of :func:`to_plain`."""
    if isinstance(value, dict):
        if value.get(_BUFFER) is True:
            return HistoryBuffer(
                from_plain(value['log_history']),
                from_plain(value['count_history']), value['max_length'])
        if set(value) == {_ARRAY}:
            return value[_ARRAY].numpy()
        return type(value)((k, from_plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(from_plain(v) for v in value)
    return value


@HOOKS.register_module()
class WeightsOnlyCheckpointHook(Hook):
    """Save the message hub's state as plain data; rebuild it on load.

    Its ``HistoryBuffer`` objects pickle numpy arrays and bound methods
    (``getattr``), which a weights-only load refuses (and allowing
    ``getattr`` would allow any code).
    """
    priority = 'LOWEST'  # after any hook that adds to the checkpoint

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if 'message_hub' in checkpoint:
            checkpoint['message_hub'] = to_plain(checkpoint['message_hub'])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if 'message_hub' in checkpoint:
            checkpoint['message_hub'] = from_plain(checkpoint['message_hub'])


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def seed_worker(worker_id: int, base: int) -> None:
    """``worker_init_fn`` of :class:`EpochSeedHook`."""
    _seed_all((base + worker_id) % 2**32)


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Seed each training epoch's random stream (main process and new
    workers) from the run's seed and the epoch alone, so a resumed run draws
    the crops an uninterrupted one draws. MMEngine seeds new workers alike
    every epoch; persistent workers keep their stream, so the hook warns
    when resuming with them.
    """
    priority = 'VERY_HIGH'  # before the epoch's data iterator is made

    def __init__(self) -> None:
        self._warned = False

    def before_train_epoch(self, runner) -> None:
        seed = (int(runner.seed or 0) + 1_000_003 * runner.epoch) % 2**32
        _seed_all(seed)
        loader = runner.train_dataloader
        workers = getattr(loader, 'num_workers', 0)
        if not workers:
            return
        if getattr(loader, 'persistent_workers', False):
            if runner.cfg.get('resume') and not self._warned:
                print_log(
                    'persistent dataloader workers: a run resumed with '
                    '--resume draws other augmentations than an '
                    'uninterrupted one; set train_dataloader.'
                    'persistent_workers=False for an exact resume',
                    logger='current',
                    level=logging.WARNING)
                self._warned = True
            return
        loader.worker_init_fn = partial(
            seed_worker, base=seed + 7919 * (1 + get_rank() * workers))
