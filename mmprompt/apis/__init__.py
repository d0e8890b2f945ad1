# Copyright (c) mmprompt contributors. All rights reserved.
from .hub import get_checkpoint, list_models
from .image_tagger import ImageTagger, build_tagging_model, list_tagging_models
from .zero_shot_classifier import ZeroShotClassifier, build_zero_shot_model

__all__ = [
    'ZeroShotClassifier', 'build_zero_shot_model', 'get_checkpoint',
    'list_models', 'ImageTagger', 'build_tagging_model', 'list_tagging_models'
]
