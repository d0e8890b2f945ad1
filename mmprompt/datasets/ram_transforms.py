# Copyright (c) mmprompt contributors. All rights reserved.
"""RAM's image preprocessing (``recognize-anything``, Apache-2.0) as an MMCV
transform; it decodes with PIL as RAM does (OpenCV's EXIF handling and JPEG
decoder may differ by a grey level)."""
from typing import List

import numpy as np
from PIL import Image

from mmprompt.registry import TRANSFORMS
from .transforms import PILPreprocess


def ram_resize(image: Image.Image, size: int) -> np.ndarray:
    """RAM's ``convert('RGB')`` and bilinear ``size x size`` resize, as
    ``(size, size, 3)`` uint8 RGB pixels."""
    image = image.convert('RGB').resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


@TRANSFORMS.register_module()
class RAMPreprocess(PILPreprocess):
    """Load (if needed) and resize an image exactly as RAM does (see
    :class:`~mmprompt.datasets.transforms.PILPreprocess`).

    Args:
        scale (int): The model's input side. Defaults to 384.
        array_order (str): Channel order of arrays. Defaults to ``'bgr'``.
        backend_args (dict, optional): MMEngine backend args. Defaults to None.
    """

    default_scale = 384

    def resize(self, image: Image.Image) -> np.ndarray:
        return ram_resize(image, self.scale)


def ram_pipeline(scale: int = 384, array_order: str = 'bgr') -> List[dict]:
    """RAM's test pipeline: :class:`RAMPreprocess`, ``PackInputs``.

    Args:
        scale (int): The model's input side. Defaults to 384.
        array_order (str): Channel order of arrays. Defaults to ``'bgr'``.
    """
    return [
        dict(type='RAMPreprocess', scale=scale, array_order=array_order),
        dict(type='PackInputs')
    ]
