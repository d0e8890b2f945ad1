# Copyright (c) mmprompt contributors. All rights reserved.
"""mmprompt: prompt-based image recognition on MMPreTrain.

Frozen CLIP and RAM models that classify any image from category names (and
optional descriptions and example images), or tag everything they see.
"""
from .utils import register_all_modules
from .version import __version__, version_info

__all__ = ['__version__', 'version_info', 'register_all_modules']
