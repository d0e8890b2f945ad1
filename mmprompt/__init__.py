# Copyright (c) mmprompt contributors. All rights reserved.
"""mmprompt: prompt-based image recognition on MMPreTrain.

Frozen CLIP and RAM models that classify any image from category names (and
optional descriptions and example images), or tag everything they see.
"""
import warnings

# mmcv-lite warns on import that its compiled MultiScaleDeformableAttention
# is missing ("install mmcv rather than mmcv-lite"); mmprompt needs none of
# mmcv's ops. Only that warning, raised by that module, is silenced.
warnings.filterwarnings(
    'ignore',
    message=r'Fail to import ``MultiScaleDeformableAttention``',
    category=UserWarning,
    module=r'mmcv\.cnn\.bricks\.transformer')

from .utils import register_all_modules  # noqa: E402
# What a refused checkpoint is, told to utils.checkpoint by the converters.
from . import converters  # noqa: E402,F401
from .version import __version__, version_info  # noqa: E402

__all__ = ['__version__', 'version_info', 'register_all_modules']
