# Copyright (c) mmprompt contributors. All rights reserved.
"""MMEngine's Runner, quiet at start-up.

MMEngine's ``Runner.__init__`` logs the system environment and the whole
config at INFO: some 200 lines before the first word about the run (and
before any one-line error). :class:`QuietRunner` logs them at DEBUG, so
they show with ``log_level='DEBUG'`` (the tools' ``--verbose``) and
nothing else changes.
"""
import logging

from mmengine.runner import Runner

from mmprompt.registry import RUNNERS


class _DebugLevel(logging.Filter):
    """A logger filter that lowers every record it sees to DEBUG; the
    handlers' levels then decide whether it shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.levelno, record.levelname = logging.DEBUG, 'DEBUG'
        return True


@RUNNERS.register_module()
class QuietRunner(Runner):
    """A :class:`mmengine.runner.Runner` whose environment and config dump
    is logged at DEBUG instead of INFO.

    Built from a config with ``runner_type='QuietRunner'`` (the default of
    ``configs/_base_/default_runtime.py``) through ``RUNNERS.build(cfg)``;
    it takes the Runner's arguments.
    """

    def _log_env(self, env_cfg: dict) -> None:
        quiet = _DebugLevel()
        self.logger.addFilter(quiet)
        try:
            super()._log_env(env_cfg)
        finally:
            self.logger.removeFilter(quiet)
