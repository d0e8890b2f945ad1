# Copyright (c) mmprompt contributors. All rights reserved.
from .hooks import (CompileHook, PrecisionHook, PrepareOpensetHook,
                    PrepareZeroShotHook, cache_prototypes_by_default,
                    default_prototype_cache_dir, prepare_zero_shot)
from .log_processor import EpochLogProcessor
from .prompt_hooks import PromptClassesHook, TipAdapterHook
from .resume_hooks import EpochSeedHook, WeightsOnlyCheckpointHook
from .run_config import complete_config
from .runner import QuietRunner

__all__ = [
    'CompileHook', 'PrecisionHook', 'PrepareOpensetHook',
    'PrepareZeroShotHook', 'PromptClassesHook', 'TipAdapterHook',
    'prepare_zero_shot', 'EpochSeedHook', 'WeightsOnlyCheckpointHook',
    'QuietRunner', 'cache_prototypes_by_default', 'complete_config',
    'default_prototype_cache_dir', 'EpochLogProcessor'
]
