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
pixels equal those of :func:`mmprompt.models.ram.ram_preprocess`. The mean /
std normalisation stays in the model's data preprocessor.
"""
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from PIL import Image

from mmprompt.registry import TRANSFORMS
from .transforms import open_image


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
class RAMPreprocess(BaseTransform):
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

    def __init__(self,
                 scale: int = 384,
                 array_order: str = 'bgr',
                 backend_args: Optional[dict] = None) -> None:
        if scale <= 0:
            raise ValueError(f'scale must be positive, got {scale}')
        if array_order not in ('bgr', 'rgb'):
            raise ValueError("array_order must be 'bgr' or 'rgb', got "
                             f'{array_order!r}')
        self.scale = scale
        self.array_order = array_order
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        """Preprocess one sample.

        Args:
            results (dict): With ``img`` or ``img_path``.

        Returns:
            dict: With ``img`` as ``(scale, scale, 3)`` uint8 BGR.
        """
        image = results.get('img')
        if image is None:
            image = open_image(results['img_path'], self.backend_args)
        elif isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim not in (2, 3) or (
                    image.ndim == 3 and image.shape[2] != 3):
                raise ValueError('an array image must be (H, W) or '
                                 f'(H, W, 3) uint8, got {image.dtype} '
                                 f'{image.shape}')
            if image.ndim == 3 and self.array_order == 'bgr':
                image = image[..., ::-1]
            image = Image.fromarray(np.ascontiguousarray(image))
        elif not isinstance(image, Image.Image):
            raise TypeError('img must be a PIL image or a numpy array, got '
                            f'{type(image).__name__}')
        results['ori_shape'] = (image.height, image.width)
        rgb = ram_resize(image, self.scale)
        results['img'] = np.ascontiguousarray(rgb[..., ::-1])
        results['img_shape'] = results['img'].shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(scale={self.scale}, '
                f'array_order={self.array_order!r})')
