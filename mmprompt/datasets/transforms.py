# Copyright (c) mmprompt contributors. All rights reserved.
"""OpenAI CLIP's image preprocessing as an MMCV transform.

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
from typing import Optional, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio
from PIL import Image

from mmprompt.registry import TRANSFORMS
from mmprompt.utils.errors import ImageDecodeError
from mmprompt.utils.image_io import decode_image


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


def clip_resize_crop(image: Image.Image, size: int) -> np.ndarray:
    """OpenAI CLIP's preprocessing, up to the uint8 RGB pixels.

    The short side is resized to ``size`` with PIL's bicubic filter (the
    long side becomes ``int(size * long / short)``), the center ``size x
    size`` square is cropped, and the result is converted to RGB.

    Args:
        image (PIL.Image.Image): Any PIL image, in any mode.
        size (int): Output side, the model's input resolution.

    Returns:
        np.ndarray: ``(size, size, 3)`` uint8 RGB pixels.
    """
    width, height = image.size
    if width <= height:
        new_size = (size, int(size * height / width))
    else:
        new_size = (int(size * width / height), size)
    if new_size != (width, height):
        image = image.resize(new_size, Image.BICUBIC)
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
                raise ValueError('an array image must be (H, W) or '
                                 f'(H, W, 3) uint8, got {image.dtype} '
                                 f'{image.shape}')
            if image.ndim == 3 and self.array_order == 'bgr':
                image = image[..., ::-1]
            image = decode_image(np.ascontiguousarray(image), mode=None)
        elif isinstance(image, Image.Image):
            image = decode_image(image, mode=None)
        else:
            raise TypeError('img must be a PIL image or a numpy array, got '
                            f'{type(image).__name__}')
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
    """Load (if needed), resize and center-crop an image as OpenAI CLIP does.

    Takes the image from ``results['img']`` when present (a PIL image, or
    an ``(H, W, 3)`` / ``(H, W)`` uint8 array), otherwise decodes
    ``results['img_path']`` with PIL. See :func:`clip_resize_crop` for the
    rest. Unlike OpenAI's code, the EXIF orientation is applied and 16-bit
    images are scaled (one decoder for every entry point, see
    :func:`mmprompt.utils.image_io.decode_image`). The output is
    BGR, MMCV's channel order, as ``LoadImageFromFile`` gives.

    Required Keys:

    - img_path or img

    Modified Keys:

    - img (``(scale, scale, 3)`` uint8, BGR)
    - img_shape
    - ori_shape

    Args:
        scale (int): Output side, the model's input resolution.
            Defaults to 224.
        array_order (str): Channel order of array inputs: ``'bgr'``
            (MMCV's, e.g. ``mmcv.imread``) or ``'rgb'`` (MMPreTrain's CIFAR
            datasets, ``np.asarray(pil_image)``). Defaults to ``'bgr'``.
        backend_args (dict, optional): MMEngine file backend arguments.
            Defaults to None.
    """

    default_scale = 224

    def resize(self, image: Image.Image) -> np.ndarray:
        """OpenAI's resize and crop, see :func:`clip_resize_crop`."""
        return clip_resize_crop(image, self.scale)


def image_transform_of(model: object) -> str:
    """The name (in ``TRANSFORMS``) of the image transform a model
    declares as ``image_transform`` (its CLIP's, for the prompt learners):
    ``'CLIPPreprocess'`` for CLIP, ``'SquashPreprocess'`` for SigLIP."""
    for obj in (model, getattr(model, 'clip', None)):
        name = getattr(obj, 'image_transform', None)
        if isinstance(name, str):
            return name
    return 'CLIPPreprocess'


def build_image_transform(name: str, scale: int) -> BaseTransform:
    """Build a :class:`PILPreprocess` transform by its registry name.

    Args:
        name (str): E.g. ``'CLIPPreprocess'`` or ``'SquashPreprocess'``.
        scale (int): Output side.

    Returns:
        BaseTransform: The transform.
    """
    return TRANSFORMS.build(dict(type=name, scale=scale))


def squash_resize(image: Image.Image,
                  size: int,
                  interpolation: str = 'bicubic') -> np.ndarray:
    """open_clip's ``resize_mode='squash'`` (SigLIP, SigLIP 2), up to the
    uint8 RGB pixels: a PIL resize to ``size x size`` ignoring the aspect
    ratio, no crop, then the conversion to RGB (open_clip's order).

    Args:
        image (PIL.Image.Image): Any PIL image, in any mode.
        size (int): Output side.
        interpolation (str): ``'bicubic'`` or ``'bilinear'``.
            Defaults to ``'bicubic'``.

    Returns:
        np.ndarray: ``(size, size, 3)`` uint8 RGB pixels.
    """
    resample = dict(bicubic=Image.BICUBIC, bilinear=Image.BILINEAR)
    if image.size != (size, size):
        image = image.resize((size, size), resample[interpolation])
    return np.array(image.convert('RGB'))


@TRANSFORMS.register_module()
class SquashPreprocess(PILPreprocess):
    """Load (if needed) and squash an image to a square, as open_clip
    preprocesses SigLIP and SigLIP 2 (see :func:`squash_resize`).

    Keys and outputs are :class:`CLIPPreprocess`'s (BGR uint8).

    Args:
        scale (int): Output side, the model's input resolution.
            Defaults to 224.
        interpolation (str): ``'bicubic'`` (every SigLIP model in
            open_clip) or ``'bilinear'``. Defaults to ``'bicubic'``.
        **kwargs: ``array_order`` and ``backend_args`` of
            :class:`PILPreprocess`.
    """

    def __init__(self,
                 scale: Optional[int] = None,
                 interpolation: str = 'bicubic',
                 **kwargs) -> None:
        super().__init__(scale, **kwargs)
        if interpolation not in ('bicubic', 'bilinear'):
            raise ValueError("interpolation must be 'bicubic' or "
                             f"'bilinear', got {interpolation!r}")
        self.interpolation = interpolation

    def resize(self, image: Image.Image) -> np.ndarray:
        """open_clip's squash resize, see :func:`squash_resize`."""
        return squash_resize(image, self.scale, self.interpolation)
