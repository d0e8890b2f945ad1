# Copyright (c) mmprompt contributors. All rights reserved.
"""Training logs that say how many epochs there are."""
from typing import Tuple

from mmengine.runner import LogProcessor

from mmprompt.registry import LOG_PROCESSORS


@LOG_PROCESSORS.register_module()
class EpochLogProcessor(LogProcessor):
    """MMEngine's :class:`~mmengine.runner.LogProcessor`, writing
    ``Epoch(train) [2/10][5/50]`` for ``Epoch(train) [2][5/50]``."""

    def get_log_after_iter(self, runner, batch_idx: int,
                           mode: str) -> Tuple[dict, str]:
        tag, log_str = super().get_log_after_iter(runner, batch_idx, mode)
        if self.by_epoch and mode == 'train' and 'epoch' in tag:
            epoch = f"[{tag['epoch']}]"
            # The first bracket of the line is the epoch's.
            log_str = log_str.replace(
                epoch, f"[{tag['epoch']}/{runner.max_epochs}]", 1)
        return tag, log_str
