# Copyright (c) mmprompt contributors. All rights reserved.
from .fast_attention import SDPAWindowMSA, enable_sdpa
from .precision import PRECISIONS, apply_precision

__all__ = ['SDPAWindowMSA', 'enable_sdpa', 'PRECISIONS', 'apply_precision']
