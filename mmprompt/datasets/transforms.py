# Copyright (c) mmprompt contributors. All rights reserved.
"""CLIP's image preprocessing as an MMCV transform.

OpenAI's ``clip.load`` (MIT licence) and open_clip's ``image_transform``
resize the short side with PIL's bicubic filter, center-crop, and only then
convert to RGB. MMPreTrain's ``LoadImageFromFile`` + ``ResizeEdge`` +
``CenterCrop`` match this for RGB and grayscale images, but they convert to
RGB first, so RGBA images (PIL premultiplies alpha while resizing) and
palette images (PIL resizes ``P`` mode with nearest neighbour) come out
different. :class:`CLIPPreprocess` keeps OpenAI's order of operations.
Mean/std normalisation stays in the model's data preprocessor; the output
is BGR like ``LoadImageFromFile``'s, so that preprocessor keeps
``to_rgb=True`` (the flip is lossless).
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
    """Decode an image file with :func:`mmprompt.utils.image_io.decode_image`
    (pixel budget, EXIF orientation, 16-bit), in a mode the transforms
    resize as the references do.

    Args:
        path (str): The file (any MMEngine file backend).
        backend_args (dict, optional): MMEngine file backend arguments.
            Defaults to None.

    Returns:
        PIL.Image.Image: The decoded image, in one of
        :data:`mmprompt.utils.image_io.KEPT_MODES`.

    Raises:
        ImageDecodeError: A ``ValueError`` naming the file, if it cannot be
            read or decoded or is over the limits.
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
    """The ``(left, top, right, bottom)`` box of torchvision's center crop.

    Args:
        width (int): Image width.
        height (int): Image height.
        size (int): Side of the square crop.

    Returns:
        tuple[int]: The crop box.
    """
    left = int(round((width - size) / 2.0))
    top = int(round((height - size) / 2.0))
    return left, top, left + size, top + size


def clip_resize_crop(image: Image.Image,
                     size: int,
                     resize_mode: str = 'shortest',
                     interpolation: str = 'bicubic') -> np.ndarray:
    """CLIP's preprocessing, up to the uint8 RGB pixels, as open_clip's
    ``image_transform`` does it for evaluation.

    With ``'shortest'`` (OpenAI's) the short side is resized to ``size``
    (the long side becomes ``int(size * long / short)``) and the centre
    ``size x size`` square is cropped; with ``'squash'`` the image is
    resized to ``size x size``. Then it is converted to RGB.

    Args:
        image (PIL.Image.Image): Any PIL image, in any mode.
        size (int): Output side, the model's input resolution.
        resize_mode (str): ``'shortest'`` or ``'squash'``.
            Defaults to ``'shortest'``.
        interpolation (str): PIL's filter, ``'bicubic'`` or ``'bilinear'``.
            Defaults to ``'bicubic'``.

    Returns:
        np.ndarray: ``(size, size, 3)`` uint8 RGB pixels.
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

    The shared part of :class:`CLIPPreprocess` and
    :class:`mmprompt.datasets.RAMPreprocess`: the image comes from
    ``results['img']`` when present (a PIL image, or an ``(H, W, 3)`` /
    ``(H, W)`` uint8 array in ``array_order``), otherwise from
    ``results['img_path']``; every image goes through
    :func:`mmprompt.utils.image_io.decode_image` (pixel budget, EXIF
    orientation, 16-bit scaling; an unreadable file raises a ``ValueError``
    naming it). Subclasses define :meth:`resize`. The output
    is BGR, MMCV's channel order, as ``LoadImageFromFile`` gives.

    Args:
        scale (int, optional): Output side, the model's input resolution.
            Defaults to the subclass's ``default_scale``.
        array_order (str): Channel order of array inputs: ``'bgr'``
            (MMCV's, e.g. ``mmcv.imread``) or ``'rgb'`` (MMPreTrain's CIFAR
            datasets, ``np.asarray(pil_image)``). Defaults to ``'bgr'``.
        backend_args (dict, optional): MMEngine file backend arguments.
            Defaults to None.
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
    """Load (if needed), resize and crop an image as CLIP models do.

    Takes the image from ``results['img']`` when present (a PIL image, or
    an ``(H, W, 3)`` / ``(H, W)`` uint8 array), otherwise decodes
    ``results['img_path']`` with PIL. See :func:`clip_resize_crop` for the
    rest: OpenAI's resize and centre crop by default, or a model's own
    resize mode and interpolation (its config's ``image_preprocess``, see
    :attr:`mmprompt.models.clip.CLIP.preprocess_args`). Unlike OpenAI's
    code, the EXIF orientation is applied and 16-bit images are scaled (one
    decoder for every entry point, see
    :func:`mmprompt.utils.image_io.decode_image`). The output is BGR,
    MMCV's channel order, as ``LoadImageFromFile`` gives.

    Required Keys:

    - img_path or img

    Modified Keys:

    - img (``(scale, scale, 3)`` uint8, BGR)
    - img_shape
    - ori_shape

    Args:
        scale (int): Output side, the model's input resolution.
            Defaults to 224.
        resize_mode (str): ``'shortest'`` (resize the short side, centre
            crop) or ``'squash'``. Defaults to ``'shortest'``.
        interpolation (str): ``'bicubic'`` or ``'bilinear'``.
            Defaults to ``'bicubic'``.
        array_order (str): Channel order of array inputs: ``'bgr'``
            (MMCV's, e.g. ``mmcv.imread``) or ``'rgb'`` (MMPreTrain's CIFAR
            datasets, ``np.asarray(pil_image)``). Defaults to ``'bgr'``.
        resize_mode (str): open_clip's ``resize_mode``: ``'shortest'``
            (resize the short side, center-crop; OpenAI's) or ``'squash'``
            (resize to the square; PE-Core's). Defaults to ``'shortest'``.
        interpolation (str): open_clip's ``interpolation``, ``'bicubic'``
            (OpenAI's) or ``'bilinear'`` (PE-Core's). Defaults to
            ``'bicubic'``.
        backend_args (dict, optional): MMEngine file backend arguments.
            Defaults to None.
    """

    default_scale = 224

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
    """The test pipeline of a CLIP-like model: :class:`CLIPPreprocess` with
    the model's ``preprocess_args``, then ``PackInputs``.

    Args:
        preprocess_args (dict): ``scale``, ``resize_mode`` and
            ``interpolation`` (:attr:`mmprompt.models.clip.CLIP.
            preprocess_args`).
        array_order (str): Channel order of array inputs.
            Defaults to ``'bgr'``.

    Returns:
        list[dict]: The transforms' configs.
    """
    return [
        dict(type='CLIPPreprocess', array_order=array_order,
             **preprocess_args),
        dict(type='PackInputs')
    ]


def build_pipeline(steps: Sequence[dict]) -> Compose:
    """Build a pipeline of transform configs with mmprompt's registry,
    whatever the default scope (DataLoader workers have none)."""
    from mmprompt.registry import TRANSFORMS
    from mmprompt.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    return Compose([TRANSFORMS.build(dict(step)) for step in steps])
