# Copyright (c) mmprompt contributors. All rights reserved.
from .hooks import PrepareOpensetHook

__all__ = ['PrepareOpensetHook']
