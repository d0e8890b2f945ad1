# Copyright (c) mmprompt contributors. All rights reserved.
from .hooks import CompileHook, PrecisionHook, PrepareOpensetHook

__all__ = ['CompileHook', 'PrecisionHook', 'PrepareOpensetHook']
