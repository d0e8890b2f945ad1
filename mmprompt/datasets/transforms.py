# Copyright (c) mmprompt contributors. All rights reserved.
"""CLIP's image preprocessing as an MMCV transform.

OpenAI's ``clip.load`` (MIT licence) resizes and crops with PIL *before*
converting to RGB; MMPreTrain's pipeline converts first, so RGBA and
palette images differ. :class:`CLIPPreprocess` keeps OpenAI's order.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform, Compose
from mmengine import fileio
from PIL import Image

from mmprompt.registry import TRANSFORMS
from mmprompt.utils.errors import (ImageDecodeError, InputTypeError,
                                   InvalidInputError)
from mmprompt.utils.image_io import (INTERPOLATIONS, check_resize_args,
                                     decode_image)


def open_image(path: str, backend_args: Optional[dict] = None) -> Image.Image:
    """Decode an image file with :func:`mmprompt.utils.image_io.decode_image`.

    Args:
        path (str): The file (any MMEngine file backend).
        backend_args (dict, optional): MMEngine backend args. Defaults to None.
    """
    if backend_args is None and '://' not in str(path):
        return decode_image(path, mode=None)
    try:
        data = fileio.get(path, backend_args=backend_args)
    except Exception as e:  # noqa: BLE001 - file backends vary
        raise ImageDecodeError(f'{path}: cannot read ({type(e).__name__}: '
                               f'{e})') from None
    return decode_image(data, mode=None, name=path)


def center_crop_box(width: int, height: int,
                    size: int) -> Tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of torchvision's ``size`` center
    crop of a ``width x height`` image."""
    left = int(round((width - size) / 2.0))
    top = int(round((height - size) / 2.0))
    return left, top, left + size, top + size


def clip_resize_crop(image: Image.Image,
                     size: int,
                     resize_mode: str = 'shortest',
                     interpolation: str = 'bicubic') -> np.ndarray:
    """CLIP's evaluation preprocessing (open_clip's ``image_transform``)
    up to the ``(size, size, 3)`` uint8 RGB pixels.

    Args:
        image (PIL.Image.Image): Any PIL image, in any mode.
        size (int): Output side.
        resize_mode (str): ``'shortest'`` (short side, center crop; OpenAI's)
            or ``'squash'`` (PE-Core's). Defaults to ``'shortest'``.
        interpolation (str): PIL's filter, ``'bicubic'`` (OpenAI's) or
            ``'bilinear'`` (PE-Core's). Defaults to ``'bicubic'``.
    """
    check_resize_args(resize_mode, interpolation)
    width, height = image.size
    if resize_mode == 'squash':
        new_size = (size, size)
    elif width <= height:
        new_size = (size, int(size * height / width))
    else:
        new_size = (int(size * width / height), size)
    if new_size != (width, height):
        image = image.resize(new_size, INTERPOLATIONS[interpolation])
    if image.size != (size, size):
        image = image.crop(center_crop_box(*image.size, size))
    return np.array(image.convert('RGB'))


class PILPreprocess(BaseTransform):
    """Take or decode an image with PIL, resize it, output BGR uint8.

    The base of :class:`CLIPPreprocess` and ``RAMPreprocess``, which define
    :meth:`resize`. Decoded by :func:`mmprompt.utils.image_io.decode_image`;
    the output is BGR, as ``LoadImageFromFile`` gives.

    Required Keys:

    - img_path or img

    Modified Keys:

    - img (``(scale, scale, 3)`` uint8, BGR)
    - img_shape
    - ori_shape

    Args:
        scale (int, optional): Output side. Defaults to ``default_scale``.
        array_order (str): Channel order of array inputs: ``'bgr'`` (MMCV's)
            or ``'rgb'`` (``np.asarray(pil_image)``). Defaults to ``'bgr'``.
        backend_args (dict, optional): MMEngine backend args. Defaults to None.
    """
    default_scale = 224

    def __init__(self,
                 scale: Optional[int] = None,
                 array_order: str = 'bgr',
                 backend_args: Optional[dict] = None) -> None:
        scale = self.default_scale if scale is None else scale
        if scale <= 0:
            raise ValueError(f'scale must be positive, got {scale}')
        if array_order not in ('bgr', 'rgb'):
            raise ValueError("array_order must be 'bgr' or 'rgb', got "
                             f'{array_order!r}')
        self.scale = scale
        self.array_order = array_order
        self.backend_args = backend_args

    def resize(self, image: Image.Image) -> np.ndarray:
        """``(scale, scale, 3)`` uint8 RGB pixels of ``image``."""
        raise NotImplementedError

    def transform(self, results: dict) -> dict:
        image = results.get('img')
        if image is None:
            image = open_image(results['img_path'], self.backend_args)
        elif isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim not in (2, 3) or (
                    image.ndim == 3 and image.shape[2] != 3):
                raise InvalidInputError('an array image must be (H, W) or '
                                        f'(H, W, 3) uint8, got {image.dtype} '
                                        f'{image.shape}')
            if image.ndim == 3 and self.array_order == 'bgr':
                image = image[..., ::-1]
            image = decode_image(np.ascontiguousarray(image), mode=None)
        elif isinstance(image, Image.Image):
            image = decode_image(image, mode=None)
        else:
            raise InputTypeError('img must be a PIL image or a numpy array, '
                                 f'got {type(image).__name__}')
        results['ori_shape'] = (image.height, image.width)
        rgb = self.resize(image)
        results['img'] = np.ascontiguousarray(rgb[..., ::-1])
        results['img_shape'] = results['img'].shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(scale={self.scale}, '
                f'array_order={self.array_order!r})')


@TRANSFORMS.register_module()
class CLIPPreprocess(PILPreprocess):
    """:class:`PILPreprocess` with CLIP's :func:`clip_resize_crop`.

    Args:
        scale (int): The model's input side. Defaults to 224.
        resize_mode (str): See :func:`clip_resize_crop`.
            Defaults to ``'shortest'``.
        interpolation (str): See :func:`clip_resize_crop`.
            Defaults to ``'bicubic'``.
        array_order (str): Channel order of arrays. Defaults to ``'bgr'``.
        backend_args (dict, optional): MMEngine backend args. Defaults to None.
    """

    def __init__(self,
                 scale: Optional[int] = None,
                 resize_mode: str = 'shortest',
                 interpolation: str = 'bicubic',
                 array_order: str = 'bgr',
                 backend_args: Optional[dict] = None) -> None:
        super().__init__(scale, array_order, backend_args)
        check_resize_args(resize_mode, interpolation)
        self.resize_mode = resize_mode
        self.interpolation = interpolation

    def resize(self, image: Image.Image) -> np.ndarray:
        """The resize and crop of :func:`clip_resize_crop`."""
        return clip_resize_crop(image, self.scale, self.resize_mode,
                                self.interpolation)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(scale={self.scale}, '
                f'resize_mode={self.resize_mode!r}, '
                f'interpolation={self.interpolation!r}, '
                f'array_order={self.array_order!r})')


def clip_pipeline(preprocess_args: dict,
                  array_order: str = 'bgr') -> List[dict]:
    """A CLIP-like model's test pipeline: ``CLIPPreprocess``, ``PackInputs``.

    Args:
        preprocess_args (dict): The model's ``preprocess_args``.
        array_order (str): Channel order of arrays. Defaults to ``'bgr'``.
    """
    return [
        dict(type='CLIPPreprocess', array_order=array_order,
             **preprocess_args),
        dict(type='PackInputs')
    ]


def build_pipeline(steps: Sequence[dict]) -> Compose:
    """Build a pipeline of transform configs with mmprompt's registry,
    whatever the default scope (DataLoader workers have none)."""
    from mmprompt.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    return Compose([TRANSFORMS.build(dict(step)) for step in steps])
