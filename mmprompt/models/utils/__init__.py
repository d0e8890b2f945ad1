# Copyright (c) mmprompt contributors. All rights reserved.
from .attention_pool import AttentionPool
from .compile import COMPILE_MODES, check_compile_mode, compile_model
from .data_parallel import DistributedWrapper, has_trainable_parameters
from .fast_attention import SDPAWindowMSA, enable_sdpa
from .precision import PRECISIONS, apply_precision

__all__ = [
    'AttentionPool', 'COMPILE_MODES', 'check_compile_mode', 'compile_model',
    'DistributedWrapper', 'has_trainable_parameters', 'SDPAWindowMSA',
    'enable_sdpa', 'PRECISIONS', 'apply_precision'
]
