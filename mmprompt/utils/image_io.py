# Copyright (c) mmprompt contributors. All rights reserved.
"""The one image decoder (:func:`decode_image`), so one image gives one
answer in every entry point: size checked from the header before decoding,
upright, in 8 bits."""
import io
import os
import re
import warnings
from typing import Optional, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageDecodeError

ImageSource = Union[str, bytes, np.ndarray, Image.Image]

# PIL's own warning level (a 13000 x 13000 image is refused); a 100000 x 1
# strip is refused, a 10:1 panorama passes. An RGB photo at the pixel limit
# takes 716 MB to decode.
DEFAULT_MAX_PIXELS = 89_478_485
DEFAULT_MAX_ASPECT = 50.0
ENV_MAX_PIXELS = 'MMPROMPT_MAX_PIXELS'
ENV_MAX_ASPECT = 'MMPROMPT_MAX_ASPECT'
DEFAULT_MAX_DECODE_MB = 1000.0
ENV_MAX_DECODE_MB = 'MMPROMPT_MAX_DECODE_MB'

#: Peak bytes per pixel of :func:`decode_image` by the file's mode
#: (growth of the peak RSS on 3000 x 3000 TIFFs, Pillow 12): pixels do not
#: say what decoding costs (a 615 KB float TIFF of 9400 x 9400 takes
#: 1.5 GB). Modes not listed are stored in 4 bytes a pixel: 8.
DECODE_BYTES_PER_PIXEL = {'1': 5, 'L': 5, 'P': 5, 'I;16': 9, 'I': 17, 'F': 17}

#: Modes kept with ``mode=None``: CLIP's and RAM's preprocessing resize
#: some of them before converting to RGB (OpenAI's order of operations).
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


def decode_budget(max_decode_mb: Optional[float] = None) -> float:
    """The decode budget in MB (1e6 bytes) in force: the argument, else
    ``$MMPROMPT_MAX_DECODE_MB``, else 1,000; 0 means no limit."""
    return _limit(max_decode_mb, ENV_MAX_DECODE_MB, DEFAULT_MAX_DECODE_MB)


def decode_cost(mode: str, width: int, height: int) -> int:
    """Estimated peak bytes of decoding an image of this mode and size."""
    key = 'I;16' if mode.startswith('I;16') else mode.split(';')[0]
    return DECODE_BYTES_PER_PIXEL.get(key, 8) * width * height


def check_decode_cost(mode: str,
                      width: int,
                      height: int,
                      max_decode_mb: Optional[float] = None,
                      name: str = 'image') -> None:
    """Refuse an image whose decoding would take more than the budget."""
    limit = decode_budget(max_decode_mb)
    cost = decode_cost(mode, width, height) / 1e6
    if limit and cost > limit:
        raise ImageDecodeError(
            f'{name} would take {format_mb(cost)} MB to decode (limit '
            f'{format_mb(limit)} MB; {mode}, {width} x {height}; set '
            f'{ENV_MAX_DECODE_MB} to change it)')


def format_mb(value: float) -> str:
    """Megabytes for a message: ``'1,502'``, ``'0.17'``."""
    return f'{value:,.0f}' if value >= 10 else f'{value:.2g}'


def estimate_decode_cost(image: ImageSource) -> int:
    """What :func:`decode_image` would take to decode ``image``, in bytes,
    from the header only.

    Args:
        image (str | bytes | np.ndarray | PIL.Image.Image): As
            :func:`decode_image` takes it.

    Returns:
        int: The estimate; 0 for an input that is not an image.
    """
    if isinstance(image, Image.Image):
        return decode_cost(image.mode, *image.size)
    if isinstance(image, np.ndarray):  # its 8-bit copy and RGB image
        pixels = image.shape[0] * image.shape[1] if image.ndim > 1 else 0
        return image.nbytes + 8 * pixels
    if isinstance(image, (bytes, bytearray, memoryview)):
        image = io.BytesIO(bytes(image))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(image) as img:
                return decode_cost(img.mode, *img.size)
    except (OSError, ValueError, TypeError, SyntaxError,
            Image.DecompressionBombError):
        return 0


def check_image_size(width: int,
                     height: int,
                     max_pixels: Optional[int] = None,
                     max_aspect: Optional[float] = None,
                     name: str = 'image') -> None:
    """Refuse an empty image, one over the pixel budget or too elongated."""
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


def _scaled(arr: np.ndarray, scale: float) -> np.ndarray:
    """``rint(arr * scale)`` as uint8, scaling a float32 ``arr`` in
    place."""
    data = arr if arr.dtype == np.float32 else arr.astype(np.float32)
    data *= scale
    np.rint(data, out=data)
    return data.astype(np.uint8)


def _to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    """uint8 as is; 16-bit by 1/257, so 65535 is white (``convert('RGB')``
    clips 99.6 % of such pixels to 255); bool and float in [0, 1] by 255."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise ImageDecodeError(
                f'{name}: integer pixels in [{lo}, {hi}], not 8 or 16 bits')
        return _scaled(arr, 1 / 257)
    if np.issubdtype(arr.dtype, np.floating):
        data = arr.astype(np.float32)
        np.nan_to_num(data, copy=False, nan=0.0)
        lo, hi = (float(data.min()), float(data.max())) if data.size else (0,
                                                                           0)
        if lo < 0 or hi > 1:
            raise ImageDecodeError(
                f'{name}: float pixels in [{lo:g}, {hi:g}], not [0, 1]')
        return _scaled(data, 255)
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
          max_aspect: float, max_decode_mb: float) -> Image.Image:
    """Decode a file or bytes, the size checked first (a JPEG over the
    budget is decoded at 1/2, 1/4 or 1/8 scale if that fits)."""
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
                check_decode_cost(img.mode, width, height, max_decode_mb,
                                  name)
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
                 name: Optional[str] = None,
                 max_decode_mb: Optional[float] = None) -> Image.Image:
    """Decode an image safely, upright (EXIF), its first frame, in 8 bits.

    Args:
        image (str | bytes | np.ndarray | PIL.Image.Image): A file path,
            the bytes of a file, an RGB(A) / grayscale array (uint8,
            uint16, bool or float in [0, 1]) or a PIL image in any mode.
        mode (str, optional): ``'RGB'`` to convert the result to RGB
            (alpha dropped); None to keep one of :data:`KEPT_MODES`.
            Defaults to ``'RGB'``.
        max_pixels (int, optional): Pixel budget; 0 for none. Defaults to
            ``$MMPROMPT_MAX_PIXELS`` or 89,478,485.
        max_aspect (float, optional): Largest long / short side ratio; 0
            for none. Defaults to ``$MMPROMPT_MAX_ASPECT`` or 50.
        name (str, optional): What to call the image in messages. Defaults
            to the path, or ``'image'``.
        max_decode_mb (float, optional): Memory budget of decoding, in MB;
            0 for none. Defaults to ``$MMPROMPT_MAX_DECODE_MB`` or 1,000.

    Returns:
        PIL.Image.Image: The decoded image (an input image is not changed).

    Raises:
        ImageDecodeError: If the input is missing, unreadable, not an image,
            or over the limits.
    """
    if mode not in ('RGB', None):
        raise ValueError(f"mode must be 'RGB' or None, got {mode!r}")
    max_pixels, max_aspect = image_limits(max_pixels, max_aspect)
    max_decode_mb = decode_budget(max_decode_mb)
    if isinstance(image, (str, os.PathLike)):
        image = os.fspath(image)
        if not image.strip():
            raise ImageDecodeError('empty image path')
        name = name or image
    name = name or 'image'
    if isinstance(image, (str, bytes, bytearray, memoryview)):
        source = image if isinstance(image, str) else bytes(image)
        img = _open(source, name, max_pixels, max_aspect, max_decode_mb)
    elif isinstance(image, np.ndarray):
        if image.ndim >= 2:
            check_image_size(image.shape[1], image.shape[0], max_pixels,
                             max_aspect, name)
        img = _array_to_pil(image, name)
    elif isinstance(image, Image.Image):
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


#: open_clip's resize modes in use: ``'shortest'`` (short side, centre
#: crop: OpenAI's) and ``'squash'`` (whole image to a square: Apple's DFN).
RESIZE_MODES = ('shortest', 'squash')
#: PIL's filters by open_clip's interpolation names.
INTERPOLATIONS = {'bicubic': Image.BICUBIC, 'bilinear': Image.BILINEAR}


def check_resize_args(resize_mode: str, interpolation: str) -> None:
    """Refuse an unknown resize mode or interpolation (``ValueError``)."""
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f'resize_mode must be one of {RESIZE_MODES}, got '
                         f'{resize_mode!r}')
    if interpolation not in INTERPOLATIONS:
        raise ValueError('interpolation must be one of '
                         f'{tuple(INTERPOLATIONS)}, got {interpolation!r}')
