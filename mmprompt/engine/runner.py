# Copyright (c) mmprompt contributors. All rights reserved.
"""MMEngine's Runner, quiet while it starts: ``Runner.__init__`` logs 100 to
200 lines at INFO (environment, config, hook order) before the first word
about the run, and before any one-line error."""
import copy
import logging
import os

from mmengine.logging import print_log
from mmengine.runner import Runner

from mmprompt.registry import RUNNERS


#: What MMEngine 0.10 logs whenever a checkpoint is saved: it builds a
#: ``FileClient`` for backward compatibility, which announces its own
#: deprecation. A user cannot act on the notice.
_FILE_CLIENT_NOTICES = ('"FileClient" will be deprecated',
                        '"HardDiskBackend" is the alias')


def _no_file_client_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(_FILE_CLIENT_NOTICES)


def _info_to_debug(record: logging.LogRecord) -> bool:
    """Lower INFO records to DEBUG; the handlers' levels decide the rest."""
    if record.levelno == logging.INFO:
        record.levelno, record.levelname = logging.DEBUG, 'DEBUG'
    return True


@RUNNERS.register_module()
class QuietRunner(Runner):
    """A :class:`mmengine.runner.Runner` whose start-up messages are logged
    at DEBUG (the tools' ``--verbose``); it takes the Runner's arguments.
    """

    @classmethod
    def from_cfg(cls, cfg) -> 'QuietRunner':
        """The Runner of a copy of ``cfg`` completed by
        :func:`~mmprompt.engine.run_config.complete_config`, caching a
        zero-shot classifier's prototypes by default.

        Args:
            cfg (Config): The whole config.
        """
        import torch

        from .hooks import cache_prototypes_by_default
        from .run_config import complete_config
        runner = super().from_cfg(complete_config(copy.deepcopy(cfg)))
        cache_prototypes_by_default(runner)
        if torch.cuda.is_available():
            # MMPreTrain's ClsDataPreprocessor takes no `non_blocking`
            # argument; MMEngine's base class reads this attribute.
            preprocessor = getattr(runner.model, 'data_preprocessor', None)
            if preprocessor is not None:
                preprocessor._non_blocking = True
        return runner

    def load_checkpoint(self, filename: str, *args, **kwargs) -> dict:
        """Load ``load_from`` as mmprompt loads weights (MMEngine's loader
        is not strict): a learned-prompt file over the config's CLIP
        (``allow_other_clip_weights`` allows another CLIP), any other file
        by :func:`mmprompt.utils.checkpoint.load_checkpoint`. Resuming keeps
        MMEngine's.

        Args:
            filename (str): The checkpoint file.

        Returns:
            dict: The loaded checkpoint (empty for a learned file).
        """
        from mmprompt.apis.builder import load_learned_weights
        from mmprompt.models.prompt_learning.learned import is_learned_file
        from mmprompt.utils.checkpoint import load_checkpoint
        from .hooks import runner_model
        if self._resume:
            return super().load_checkpoint(filename, *args, **kwargs)
        model = runner_model(self)
        if is_learned_file(filename):
            load_learned_weights(
                model,
                filename,
                allow_other_weights=bool(
                    self.cfg.get('allow_other_clip_weights', False)))
            checkpoint = {}
        else:
            checkpoint = load_checkpoint(model, filename)
            self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        self._has_loaded = True
        return checkpoint

    def __init__(self, *args, **kwargs) -> None:
        try:
            super().__init__(*args, **kwargs)
        finally:
            logger = getattr(self, 'logger', None)
            if logger is not None:
                logger.removeFilter(_info_to_debug)

    def build_logger(self, *args, **kwargs):
        """The Runner's logger, quiet until the Runner is built, and
        without MMEngine's notices about its own ``FileClient``."""
        logger = super().build_logger(*args, **kwargs)
        logger.addFilter(_info_to_debug)
        logger.addFilter(_no_file_client_notice)  # added once
        return logger

    @staticmethod
    def build_dataloader(dataloader, *args, **kwargs):
        """The Runner's DataLoader, with ``num_workers`` at most the CPU
        cores (the configs' 4 suit a GPU server, not a laptop), no
        persistent workers without workers, and pinned memory with CUDA."""
        if isinstance(dataloader, dict):
            import torch
            dataloader = copy.deepcopy(dataloader)
            cores = os.cpu_count() or 1
            workers = dataloader.get('num_workers', 0)
            if workers == 0:
                dataloader.pop('persistent_workers', None)
            if torch.cuda.is_available():
                dataloader.setdefault('pin_memory', True)
            if workers > cores:
                dataloader['num_workers'] = cores
                print_log(
                    f'num_workers {workers} lowered to the {cores} CPU '
                    'cores of this machine', logger='current')
        return Runner.build_dataloader(dataloader, *args, **kwargs)
