# Copyright (c) mmprompt contributors. All rights reserved.
"""The one image decoder: every entry point reads images through
:func:`decode_image`, so one image gives one answer everywhere (the
inferencers, the dataset transforms, the command-line tools, the demo).

What it does, in order:

1. **Bomb guard.** The size is read from the header, before any pixel is
   decoded. An image with more than ``max_pixels`` pixels, or whose long
   side is more than ``max_aspect`` times its short side, is refused with
   one line (:class:`~mmprompt.utils.ImageDecodeError`). A JPEG over the
   budget is first decoded at 1/2, 1/4 or 1/8 scale (PIL's ``draft``, no
   full-size buffer) if that brings it within. Defaults: 89,478,485 pixels
   (PIL's own warning level; a 13000 x 13000 image is refused, a 108 MP
   photo would be too) and an aspect ratio of 50 (a 100000 x 1 strip is
   refused, a 10:1 panorama passes); the environment variables
   ``MMPROMPT_MAX_PIXELS`` and ``MMPROMPT_MAX_ASPECT`` change them, the
   arguments override both, and 0 turns a check off.
2. **Orientation.** The EXIF orientation tag is applied (a phone photo is
   upright); the first frame of an animation is used.
3. **Modes.** 16-bit (``I;16``, ``I``) grayscale is scaled to 8 bits by
   1/257, so 65535 is white (a plain ``convert('RGB')`` clips 99.6 % of
   such pixels to 255); float (``F``) images in [0, 1] by 255; CMYK, YCbCr,
   LAB and HSV become RGB. RGB, L, RGBA, LA, P and 1 stay as they are with
   ``mode=None``: CLIP's and RAM's preprocessing resize some of these
   before converting to RGB (OpenAI's order of operations), and the
   transforms keep it; ``mode='RGB'`` (the default) converts them with
   PIL's ``convert('RGB')`` (alpha dropped, as both references do).
"""
import io
import os
import re
import warnings
from typing import Optional, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageDecodeError

ImageSource = Union[str, bytes, np.ndarray, Image.Image]

DEFAULT_MAX_PIXELS = 89_478_485
DEFAULT_MAX_ASPECT = 50.0
ENV_MAX_PIXELS = 'MMPROMPT_MAX_PIXELS'
ENV_MAX_ASPECT = 'MMPROMPT_MAX_ASPECT'

#: Modes the model transforms take as they are (see the module docstring).
KEPT_MODES = ('RGB', 'L', 'RGBA', 'LA', 'P', '1')


def _limit(value: Optional[float], env: str, default: float) -> float:
    if value is None:
        text = os.environ.get(env)
        if text is None or not text.strip():
            return default
        try:
            value = float(text)
        except ValueError:
            raise ImageDecodeError(f'{env}={text!r}: not a number') from None
    if value < 0:
        raise ImageDecodeError(f'{env.lower()[9:]} must be >= 0 (0 = no '
                               f'limit), got {value}')
    return float(value)


def image_limits(max_pixels: Optional[int] = None,
                 max_aspect: Optional[float] = None) -> tuple:
    """The ``(max_pixels, max_aspect)`` in force: the arguments, else the
    environment, else the defaults; 0 means no limit."""
    return (int(_limit(max_pixels, ENV_MAX_PIXELS, DEFAULT_MAX_PIXELS)),
            _limit(max_aspect, ENV_MAX_ASPECT, DEFAULT_MAX_ASPECT))


def check_image_size(width: int,
                     height: int,
                     max_pixels: Optional[int] = None,
                     max_aspect: Optional[float] = None,
                     name: str = 'image') -> None:
    """Refuse an empty image, one over the pixel budget or too elongated.

    Raises:
        ImageDecodeError: With one line giving the size and the limit.
    """
    max_pixels, max_aspect = image_limits(max_pixels, max_aspect)
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f'{name}: empty image ({width} x {height})')
    if max_pixels and width * height > max_pixels:
        raise ImageDecodeError(
            f'{name}: {width} x {height} = {width * height / 1e6:.1f} '
            f'megapixels, over the limit of {max_pixels / 1e6:.1f} '
            f'(set {ENV_MAX_PIXELS} to change it)')
    ratio = max(width, height) / min(width, height)
    if max_aspect and ratio > max_aspect:
        raise ImageDecodeError(
            f'{name}: {width} x {height} has an aspect ratio of {ratio:.0f}:1,'
            f' over the limit of {max_aspect:g}:1 (set {ENV_MAX_ASPECT} to '
            'change it)')


def _to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    """uint8 as is; uint16 (and 16-bit data in int32) by 1/257; bool and
    float in [0, 1] by 255."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise ImageDecodeError(
                f'{name}: integer pixels in [{lo}, {hi}], not 8 or 16 bits')
        return np.rint(arr.astype(np.float32) / 257).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        data = np.nan_to_num(arr.astype(np.float32), nan=0.0)
        lo, hi = (float(data.min()), float(data.max())) if data.size else (0,
                                                                           0)
        if lo < 0 or hi > 1:
            raise ImageDecodeError(
                f'{name}: float pixels in [{lo:g}, {hi:g}], not [0, 1]')
        return np.rint(data * 255).astype(np.uint8)
    raise ImageDecodeError(f'{name}: pixels of type {arr.dtype} are not an '
                           'image (use uint8 or uint16)')


def _normalise_mode(image: Image.Image, name: str) -> Image.Image:
    """An image in one of :data:`KEPT_MODES`."""
    mode = image.mode
    if mode in KEPT_MODES:
        return image
    if mode.startswith('I') or mode == 'F':
        return Image.fromarray(_to_uint8(np.asarray(image), name), mode='L')
    if mode in ('PA', 'RGBa', 'La'):
        return image.convert('RGBA')
    try:
        return image.convert('RGB')  # CMYK, YCbCr, LAB, HSV, RGBX, ...
    except (ValueError, OSError) as e:
        raise ImageDecodeError(f'{name}: cannot convert {mode} to RGB '
                               f'({e})') from None


def _array_to_pil(arr: np.ndarray, name: str) -> Image.Image:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3
                                  and arr.shape[2] not in (3, 4)):
        raise ImageDecodeError(
            f'{name}: an image array must be (H, W), (H, W, 3) or '
            f'(H, W, 4), got shape {arr.shape}')
    arr = np.ascontiguousarray(_to_uint8(arr, name))
    mode = 'L' if arr.ndim == 2 else 'RGB' if arr.shape[2] == 3 else 'RGBA'
    return Image.fromarray(arr, mode=mode)


def _bomb_size(error: Exception) -> str:
    found = re.search(r'\((\d+) pixels\)', str(error))
    return f' ({int(found.group(1)) / 1e6:.1f} megapixels)' if found else ''


def _open(data: Union[str, bytes], name: str, max_pixels: int,
          max_aspect: float) -> Image.Image:
    """Decode a file or bytes with the size checked before decoding."""
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        with warnings.catch_warnings():
            # PIL's own bomb warning; the budget is checked below.
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            if max_pixels == 0 or max_pixels > Image.MAX_IMAGE_PIXELS:
                # PIL refuses twice its limit in Image.open: let a larger
                # budget through (its limit is a process-wide setting).
                Image.MAX_IMAGE_PIXELS = None if max_pixels == 0 else max(
                    max_pixels, Image.MAX_IMAGE_PIXELS or 0)
            with Image.open(source) as img:
                width, height = img.size
                if (max_pixels and width * height > max_pixels
                        and img.format == 'JPEG'):
                    # Decoded at 1/2, 1/4 or 1/8 scale, never in full.
                    denom = next(
                        (d for d in (2, 4, 8)
                         if -(-width // d) * -(-height // d) <= max_pixels), 8)
                    img.draft(img.mode,
                              (-(-width // denom), -(-height // denom)))
                    width, height = img.size
                check_image_size(width, height, max_pixels, max_aspect, name)
                img.seek(0)  # the first frame of an animation
                img.load()
                try:
                    return ImageOps.exif_transpose(img)  # a loaded copy
                except Exception:  # noqa: BLE001 - a broken EXIF block
                    return img.copy()
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageDecodeError(
            f'{name}: too large to decode{_bomb_size(e)} (set '
            f'{ENV_MAX_PIXELS} to change the limit)') from None
    except FileNotFoundError:
        raise ImageDecodeError(f'{name}: no such file') from None
    except IsADirectoryError:
        raise ImageDecodeError(f'{name}: is a directory') from None
    except UnidentifiedImageError:
        raise ImageDecodeError(
            f'{name}: not an image file PIL can read') from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageDecodeError(
            f'{name}: damaged or incomplete image ({type(e).__name__}: '
            f'{e})') from None


def decode_image(image: ImageSource,
                 mode: Optional[str] = 'RGB',
                 max_pixels: Optional[int] = None,
                 max_aspect: Optional[float] = None,
                 name: Optional[str] = None) -> Image.Image:
    """Decode an image safely, upright, in 8 bits.

    Args:
        image (str | bytes | np.ndarray | PIL.Image.Image): A file path,
            the bytes of a file, an RGB(A) / grayscale array (uint8,
            uint16, bool or float in [0, 1]) or a PIL image in any mode.
        mode (str, optional): ``'RGB'`` to convert the result to RGB;
            None to keep one of :data:`KEPT_MODES` (for the model
            transforms). Defaults to ``'RGB'``.
        max_pixels (int, optional): Pixel budget; 0 for none. Defaults to
            ``$MMPROMPT_MAX_PIXELS`` or 89,478,485.
        max_aspect (float, optional): Largest long / short side ratio; 0
            for none. Defaults to ``$MMPROMPT_MAX_ASPECT`` or 50.
        name (str, optional): What to call the image in messages. Defaults
            to the path, or ``'image'``.

    Returns:
        PIL.Image.Image: The decoded image (a new object; an input PIL image
        is never modified).

    Raises:
        ImageDecodeError: If the input is missing, unreadable, not an image,
            or over the limits.
    """
    if mode not in ('RGB', None):
        raise ValueError(f"mode must be 'RGB' or None, got {mode!r}")
    max_pixels, max_aspect = image_limits(max_pixels, max_aspect)
    if isinstance(image, (str, os.PathLike)):
        image = os.fspath(image)
        name = name or image
        if not image.strip():
            raise ImageDecodeError('empty image path')
        img = _open(image, name, max_pixels, max_aspect)
    elif isinstance(image, (bytes, bytearray, memoryview)):
        name = name or 'image'
        img = _open(bytes(image), name, max_pixels, max_aspect)
    elif isinstance(image, np.ndarray):
        name = name or 'image'
        if image.ndim >= 2:
            check_image_size(image.shape[1], image.shape[0], max_pixels,
                             max_aspect, name)
        img = _array_to_pil(image, name)
    elif isinstance(image, Image.Image):
        name = name or 'image'
        check_image_size(image.width, image.height, max_pixels, max_aspect,
                         name)
        try:
            img = ImageOps.exif_transpose(image)
        except Exception:  # noqa: BLE001 - a broken EXIF block
            img = image
    elif image is None:
        raise ImageDecodeError('no image given (None)')
    else:
        raise ImageDecodeError(
            f'an image must be a path, bytes, a PIL image or a numpy array,'
            f' got {type(image).__name__}')
    img = _normalise_mode(img, name)
    if mode == 'RGB' and img.mode != 'RGB':
        img = img.convert('RGB')
    return img


#: open_clip's ``resize_mode`` values that
#: :class:`~mmprompt.datasets.CLIPPreprocess` implements.
RESIZE_MODES = ('shortest', 'squash')
#: open_clip's ``interpolation`` names and their PIL filters.
INTERPOLATIONS = {'bicubic': Image.BICUBIC, 'bilinear': Image.BILINEAR}


def check_resize_args(resize_mode: str, interpolation: str) -> None:
    """Refuse a resize mode or interpolation that
    :class:`~mmprompt.datasets.CLIPPreprocess` does not know, with a
    ``ValueError`` naming the ones it does."""
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f'resize_mode must be one of {RESIZE_MODES}, got '
                         f'{resize_mode!r}')
    if interpolation not in INTERPOLATIONS:
        raise ValueError('interpolation must be one of '
                         f'{tuple(INTERPOLATIONS)}, got {interpolation!r}')
