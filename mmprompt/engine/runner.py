# Copyright (c) mmprompt contributors. All rights reserved.
"""MMEngine's Runner, quiet while it starts.

``Runner.__init__`` logs at INFO the system environment, the whole config,
the order of some 15 hooks and a note on SyncBN: 100 to 200 lines before
the first word about the run, and before any one-line error.
:class:`QuietRunner` logs what its construction logs at INFO at DEBUG
instead, so it shows with ``log_level='DEBUG'`` (the tools' ``--verbose``);
warnings and everything after the start are unchanged. It also runs no
more DataLoader workers than the machine has cores (the configs' 4 suit a
GPU server, not a laptop).
"""
import copy
import logging
import os

from mmengine.logging import print_log
from mmengine.runner import Runner

from mmprompt.registry import RUNNERS


class _InfoToDebug(logging.Filter):
    """A logger filter that lowers INFO records to DEBUG; the handlers'
    levels then decide whether they show."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, 'DEBUG'
        return True


@RUNNERS.register_module()
class QuietRunner(Runner):
    """A :class:`mmengine.runner.Runner` whose start-up messages (the
    environment and config dump, the hook order) are logged at DEBUG.

    Built from a config with ``runner_type='QuietRunner'`` (the default of
    ``configs/_base_/default_runtime.py``) through ``RUNNERS.build(cfg)``;
    it takes the Runner's arguments.
    """

    def __init__(self, *args, **kwargs) -> None:
        self._start_up = _InfoToDebug()
        try:
            super().__init__(*args, **kwargs)
        finally:
            logger = getattr(self, 'logger', None)
            if logger is not None:
                logger.removeFilter(self._start_up)

    def build_logger(self, *args, **kwargs):
        """The Runner's logger, quiet until the Runner is built."""
        logger = super().build_logger(*args, **kwargs)
        logger.addFilter(self._start_up)
        return logger

    @staticmethod
    def build_dataloader(dataloader, *args, **kwargs):
        """The Runner's DataLoader, with ``num_workers`` at most the number
        of CPU cores (a note in the log when it is lowered)."""
        if isinstance(dataloader, dict):
            cores = os.cpu_count() or 1
            workers = dataloader.get('num_workers', 0)
            if workers > cores:
                dataloader = copy.deepcopy(dataloader)
                dataloader['num_workers'] = cores
                print_log(
                    f'num_workers {workers} lowered to the {cores} CPU '
                    'cores of this machine', logger='current')
        return Runner.build_dataloader(dataloader, *args, **kwargs)
