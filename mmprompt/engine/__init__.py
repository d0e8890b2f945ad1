# Copyright (c) mmprompt contributors. All rights reserved.
from .hooks import CompileHook, PrecisionHook, PrepareOpensetHook
from .prompt_hooks import PromptClassesHook

__all__ = ['CompileHook', 'PrecisionHook', 'PrepareOpensetHook', 'PromptClassesHook']
