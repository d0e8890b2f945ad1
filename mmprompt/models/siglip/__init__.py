# Copyright (c) mmprompt contributors. All rights reserved.
from .siglip import SigLIP, SigLIPZeroShot
from .tokenizer import SigLIPTokenizer, canonicalize
from .vision import MAPVisionTransformer

__all__ = [
    'MAPVisionTransformer', 'SigLIP', 'SigLIPTokenizer', 'SigLIPZeroShot',
    'canonicalize'
]
