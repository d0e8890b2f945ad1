# Copyright (c) mmprompt contributors. All rights reserved.
from .clip import CLIP, CLIPZeroShot
from .text_encoder import CLIPTextTransformer
from .tokenizer import CLIPTokenizer
from .vision_transformer import CLIPVisionTransformer
from .vocabulary import ClassVocabulary

__all__ = [
    'CLIP', 'CLIPZeroShot', 'CLIPTextTransformer', 'CLIPTokenizer',
    'CLIPVisionTransformer', 'ClassVocabulary'
]
