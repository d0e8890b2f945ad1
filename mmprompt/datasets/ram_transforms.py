# Copyright (c) mmprompt contributors. All rights reserved.
"""RAM's image preprocessing as an MMCV transform.

RAM and RAM++ (``recognize-anything``, Apache-2.0, ``get_transform``) open
the file with PIL, ``convert('RGB')`` it (no EXIF rotation, alpha dropped
without compositing) and resize it to a square with PIL's bilinear filter,
no crop. MMPreTrain's ``LoadImageFromFile`` + ``Resize(scale=(384, 384),
backend='pillow', interpolation='bilinear')`` gives the same pixels only for
files that OpenCV and PIL decode alike: OpenCV applies the EXIF orientation
(a rotated phone photo comes out transposed) and its JPEG decoder may differ
from PIL's by a grey level. :class:`RAMPreprocess` decodes with PIL, so its
pixels are RAM's; the model's data preprocessor
(:class:`~mmprompt.models.ram.RAMDataPreprocessor`) normalises them as RAM
does, bit for bit.
"""
from typing import List

import numpy as np
from PIL import Image

from mmprompt.registry import TRANSFORMS
from .transforms import PILPreprocess


def ram_resize(image: Image.Image, size: int) -> np.ndarray:
    """RAM's preprocessing up to the uint8 RGB pixels.

    Args:
        image (PIL.Image.Image): Any PIL image, in any mode.
        size (int): Output side.

    Returns:
        np.ndarray: ``(size, size, 3)`` uint8 RGB pixels: ``convert('RGB')``,
        then a PIL bilinear resize to ``size x size``.
    """
    image = image.convert('RGB').resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


@TRANSFORMS.register_module()
class RAMPreprocess(PILPreprocess):
    """Load (if needed) and resize an image exactly as RAM does.

    Takes the image from ``results['img']`` when present (a PIL image, or an
    ``(H, W, 3)`` / ``(H, W)`` uint8 array), otherwise decodes
    ``results['img_path']`` with PIL (an unreadable file raises a
    ``ValueError`` naming it). See :func:`ram_resize` for the rest. The
    output is BGR, MMCV's channel order, as ``LoadImageFromFile`` gives, for
    RAM's data preprocessor (``to_rgb=True``; the flip is lossless).

    Required Keys:

    - img_path or img

    Modified Keys:

    - img (``(scale, scale, 3)`` uint8, BGR)
    - img_shape
    - ori_shape

    Args:
        scale (int): Output side, the model's input resolution.
            Defaults to 384.
        array_order (str): Channel order of array inputs: ``'bgr'``
            (MMCV's, e.g. ``mmcv.imread``) or ``'rgb'``
            (``np.asarray(pil_image)``). Defaults to ``'bgr'``.
        backend_args (dict, optional): MMEngine file backend arguments.
            Defaults to None.
    """

    default_scale = 384

    def resize(self, image: Image.Image) -> np.ndarray:
        """RAM's square resize, see :func:`ram_resize`."""
        return ram_resize(image, self.scale)


def ram_pipeline(scale: int = 384, array_order: str = 'bgr') -> List[dict]:
    """The test pipeline of RAM and RAM++: :class:`RAMPreprocess`, then
    ``PackInputs``.

    Args:
        scale (int): The model's input side. Defaults to 384.
        array_order (str): Channel order of array inputs.
            Defaults to ``'bgr'``.

    Returns:
        list[dict]: The transforms' configs.
    """
    return [
        dict(type='RAMPreprocess', scale=scale, array_order=array_order),
        dict(type='PackInputs')
    ]
