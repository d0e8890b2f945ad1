# Copyright (c) mmprompt contributors. All rights reserved.
from .clip import CLIP, CLIPZeroShot
from .text_encoder import CLIPTextTransformer
from .tokenizer import CLIPTokenizer

__all__ = ['CLIP', 'CLIPZeroShot', 'CLIPTextTransformer', 'CLIPTokenizer']
