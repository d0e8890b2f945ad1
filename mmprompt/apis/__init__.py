# Copyright (c) mmprompt contributors. All rights reserved.
from .builder import get_model
from .hub import get_checkpoint
from .image_tagger import ImageTagger, build_tagging_model
from .model_zoo import ModelInfo, get_model_info, list_models
from .zero_shot_classifier import ZeroShotClassifier, build_zero_shot_model

__all__ = [
    'list_models', 'get_model', 'get_model_info', 'ModelInfo',
    'get_checkpoint', 'ZeroShotClassifier', 'build_zero_shot_model',
    'ImageTagger', 'build_tagging_model'
]
