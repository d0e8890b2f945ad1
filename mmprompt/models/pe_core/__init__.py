# Copyright (c) mmprompt contributors. All rights reserved.
from .vision_transformer import (PEVisionTransformer, RopeEncoderLayer,
                                 RopeMultiheadAttention, RotaryEmbedding2D,
                                 apply_rope, rope_2d)

__all__ = [
    'PEVisionTransformer', 'RopeEncoderLayer', 'RopeMultiheadAttention',
    'RotaryEmbedding2D', 'apply_rope', 'rope_2d'
]
