# Copyright (c) mmprompt contributors. All rights reserved.
from .fast_attention import SDPAWindowMSA, enable_sdpa

__all__ = ['SDPAWindowMSA', 'enable_sdpa']
