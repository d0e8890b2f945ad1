# Copyright (c) mmprompt contributors. All rights reserved.
from .tokenizer import SigLIPTokenizer, canonicalize
from .vision import MAPVisionTransformer

__all__ = ['MAPVisionTransformer', 'SigLIPTokenizer', 'canonicalize']
