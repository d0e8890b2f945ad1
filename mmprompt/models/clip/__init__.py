# Copyright (c) mmprompt contributors. All rights reserved.
from .tokenizer import CLIPTokenizer

__all__ = ['CLIPTokenizer']
