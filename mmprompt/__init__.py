# Copyright (c) mmprompt contributors. All rights reserved.
"""mmprompt: prompt-based image recognition on MMPreTrain.

Frozen CLIP and RAM models that classify any image from category names (and
optional descriptions and example images), or tag everything they see.
"""
import warnings
from typing import Any

# mmcv-lite warns on import that its compiled MultiScaleDeformableAttention
# is missing ("install mmcv rather than mmcv-lite"); mmprompt needs none of
# mmcv's ops. Only that warning, raised by that module, is silenced.
warnings.filterwarnings(
    'ignore',
    message=r'Fail to import ``MultiScaleDeformableAttention``',
    category=UserWarning,
    module=r'mmcv\.cnn\.bricks\.transformer')

from .version import __version__, version_info  # noqa: E402

__all__ = ['__version__', 'version_info', 'register_all_modules']


def __getattr__(name: str) -> Any:
    # torch and MMEngine load on first use, as in mmprompt.utils.
    if name == 'register_all_modules':
        from .utils import register_all_modules
        return register_all_modules
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
