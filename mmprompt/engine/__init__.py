# Copyright (c) mmprompt contributors. All rights reserved.
from .hooks import PrecisionHook, PrepareOpensetHook

__all__ = ['PrecisionHook', 'PrepareOpensetHook']
