# Copyright (c) mmprompt contributors. All rights reserved.
"""What the Gradio demo accepts, checked: uploads and text boxes.

- :func:`load_image` decodes an upload safely: PIL's decompression-bomb
  guard, JPEG draft decoding, a downscale to a bounded size, and grayscale,
  palette, RGBA (over white) and 16-bit images turned into 8-bit RGB.
- :func:`parse_categories`, :func:`parse_descriptions` and
  :func:`parse_examples` read the text boxes and example slots (comma or
  newline separated names; ``name: description`` lines).

Bad input raises :class:`DemoInputError` with a message meant for the page.
"""
import re
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ImageInput = Union[str, np.ndarray, Image.Image]

#: Pixels (width x height) above which an upload is refused without being
#: decoded: PIL's own decompression-bomb limit (89.5 megapixels).
MAX_PIXELS = 89_478_485
#: Longest side after decoding. RAM looks at 384 px and CLIP at 224-336 px,
#: so nothing is lost, and a huge photo costs no more than a small one.
MAX_SIDE = 1024
#: Bounds on what one request may ask for.
MAX_CATEGORIES = 1000
MAX_NAME_CHARS = 120
MAX_EXAMPLES_PER_CATEGORY = 16


class DemoInputError(ValueError):
    """Bad user input; its message is shown on the page as is."""


# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale a high-bit-depth or float array to ``uint8``.

    Integer data is assumed to use 16 bits when its maximum fits (PNG's
    16-bit grayscale opens as ``I;16`` or ``I``), else it is min-max scaled;
    float data in ``[0, 1]`` is scaled by 255, other ranges min-max.
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    data = arr.astype(np.float64)
    if not np.isfinite(data).all():
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(data.min()), float(data.max())) if data.size else (0, 0)
    if np.issubdtype(arr.dtype, np.integer) and lo >= 0:
        scale = 255.0 if hi <= 255 else 65535.0 if hi <= 65535 else hi
        data = data / scale
    elif np.issubdtype(arr.dtype, np.floating) and lo >= 0 and hi <= 1:
        pass
    else:
        data = (data - lo) / (hi - lo) if hi > lo else data * 0
    return np.clip(np.rint(data * 255), 0, 255).astype(np.uint8)


def _array_to_pil(arr: np.ndarray) -> Image.Image:
    """An RGB(A) or grayscale array, any dtype, as a PIL image."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3
                                  and arr.shape[2] not in (3, 4)):
        raise DemoInputError(
            f'an image array must be (H, W), (H, W, 3) or (H, W, 4), got '
            f'shape {arr.shape}')
    arr = np.ascontiguousarray(_to_uint8(arr))
    mode = 'L' if arr.ndim == 2 else 'RGB' if arr.shape[2] == 3 else 'RGBA'
    return Image.fromarray(arr, mode=mode)


def _flatten_to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode as 8-bit RGB; transparency is composited over white."""
    if img.mode in ('I', 'I;16', 'I;16B', 'I;16L', 'I;16N', 'F'):
        img = Image.fromarray(_to_uint8(np.asarray(img)), mode='L')
    if img.mode == 'P':
        img = img.convert('RGBA' if 'transparency' in img.info else 'RGB')
    if img.mode in ('RGBA', 'LA', 'PA', 'RGBa', 'La'):
        rgba = img.convert('RGBA')
        background = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert('RGB') if img.mode != 'RGB' else img


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise DemoInputError(f'the image is empty ({width} x {height} px)')
    if width * height > max_pixels:
        raise DemoInputError(
            f'the image is too large: {width} x {height} = '
            f'{width * height / 1e6:.0f} megapixels, the limit is '
            f'{max_pixels / 1e6:.0f}. Downscale it and upload it again.')


def _open_file(path: str, max_side: int, max_pixels: int) -> Image.Image:
    """Decode an image file with the size checked before decoding."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('error', Image.DecompressionBombWarning)
            with Image.open(path) as img:
                _check_size(img.width, img.height, max_pixels)
                # JPEG decodes straight at 1/2, 1/4 or 1/8 scale.
                img.draft('RGB', (max_side, max_side))
                img.seek(0)  # the first frame of an animation
                img.load()
                try:
                    return ImageOps.exif_transpose(img)  # a loaded copy
                except Exception:  # a broken EXIF block is not fatal
                    return img.copy()
    except DemoInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        # PIL refused it in Image.open, before the size could be read.
        found = re.search(r'\((\d+) pixels\)', str(e))
        size = (f': {int(found.group(1)) / 1e6:.0f} megapixels'
                if found else '')
        raise DemoInputError(
            f'the image is too large{size}, the limit is '
            f'{max_pixels / 1e6:.0f}. Downscale it and upload it again.') \
            from None
    except FileNotFoundError:
        raise DemoInputError(f'the image file {path!r} does not exist') \
            from None
    except UnidentifiedImageError:
        raise DemoInputError(
            'the upload is not an image file (or not one PIL can read); '
            'upload a PNG, JPEG, WebP, BMP, TIFF or GIF file') from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        reason = str(e).replace(path, '<upload>')
        raise DemoInputError(
            f'the image file is damaged or incomplete ({reason}); upload it '
            'again or try another file') from None


def load_image(image: Optional[ImageInput],
               max_side: int = MAX_SIDE,
               max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode an upload into a bounded 8-bit RGB PIL image.

    Args:
        image (str | np.ndarray | PIL.Image.Image, optional): A file path, an
            RGB(A)/grayscale array (any integer or float dtype) or a PIL
            image (any mode).
        max_side (int): The longer side is downscaled to at most this,
            keeping the aspect ratio. Defaults to :data:`MAX_SIDE`.
        max_pixels (int): Images with more pixels are refused before being
            decoded. Defaults to :data:`MAX_PIXELS`.

    Returns:
        PIL.Image.Image: An ``RGB`` image, longer side <= ``max_side``.

    Raises:
        DemoInputError: No image, an unreadable file or one that is too large.
    """
    if image is None or (isinstance(image, str) and not image.strip()):
        raise DemoInputError('no image: upload an image first')
    if isinstance(image, str):
        img = _open_file(image, max_side, max_pixels)
    elif isinstance(image, np.ndarray):
        if image.ndim >= 2:
            _check_size(image.shape[1], image.shape[0], max_pixels)
        img = _array_to_pil(image)
    elif isinstance(image, Image.Image):
        _check_size(image.width, image.height, max_pixels)
        img = image
    else:
        raise DemoInputError(
            f'unsupported image input of type {type(image).__name__}')
    img = _flatten_to_rgb(img)
    if max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    return img


# ---------------------------------------------------------------------------
# Text boxes
# ---------------------------------------------------------------------------


def _name_key(name: str) -> str:
    """Names that CLIP reads alike: case and runs of spaces ignored."""
    return ' '.join(name.lower().split())


def parse_categories(text: Optional[str],
                     max_categories: int = MAX_CATEGORIES) -> List[str]:
    """Read category names separated by commas or newlines.

    Full-width commas (``，``) and semicolons also separate; blank items are
    skipped and runs of spaces inside a name are folded.

    Args:
        text (str, optional): The text box's content.
        max_categories (int): Most names accepted. Defaults to
            :data:`MAX_CATEGORIES`.

    Returns:
        list[str]: The names in order.

    Raises:
        DemoInputError: If no name is given, a name is too long, there are
            too many, or names repeat (case-insensitively; the message names
            them).
    """
    text = text or ''
    for sep in ('\n', '，', ';', '；'):
        text = text.replace(sep, ',')
    names = [' '.join(item.split()) for item in text.split(',')]
    names = [name for name in names if name]
    if not names:
        raise DemoInputError(
            'no categories: enter category names separated by commas or '
            'newlines, e.g. "cat, dog, car"')
    if len(names) > max_categories:
        raise DemoInputError(f'too many categories: {len(names)}, the limit '
                             f'is {max_categories}')
    too_long = [n for n in names if len(n) > MAX_NAME_CHARS]
    if too_long:
        raise DemoInputError(
            f'category names are limited to {MAX_NAME_CHARS} characters: '
            f'{too_long[0][:40]!r}... is {len(too_long[0])}')
    seen: Dict[str, List[str]] = {}
    for name in names:
        seen.setdefault(_name_key(name), []).append(name)
    repeated = [spellings for spellings in seen.values() if len(spellings) > 1]
    if repeated:
        shown = ', '.join(' = '.join(f'"{s}"'
                                     for s in dict.fromkeys(spellings)) +
                          f' ({len(spellings)}x)' for spellings in repeated)
        raise DemoInputError(f'duplicate categories: {shown}. Each category '
                             'must appear once (case is ignored).')
    return names


def match_category(name: str, categories: Sequence[str], what: str) -> str:
    """Find ``name`` among ``categories`` (case and spacing ignored).

    Args:
        name (str): A name the user typed.
        categories (Sequence[str]): The parsed category names.
        what (str): What the name labels, for the error message.

    Returns:
        str: The category's spelling in ``categories``.

    Raises:
        DemoInputError: If no category matches.
    """
    keys = {_name_key(c): c for c in categories}
    found = keys.get(_name_key(name))
    if found is None:
        shown = ', '.join(f'"{c}"' for c in categories[:20])
        raise DemoInputError(f'{what} "{name}" is not one of the categories '
                             f'({shown})')
    return found


def parse_descriptions(text: Optional[str],
                       categories: Sequence[str]) -> Dict[str, List[str]]:
    """Read ``name: description`` lines.

    A category may have several lines; blank lines are skipped.

    Args:
        text (str, optional): The text box's content.
        categories (Sequence[str]): The parsed category names.

    Returns:
        dict: Category (as spelled in ``categories``) -> its descriptions.

    Raises:
        DemoInputError: A line without ``:``, an empty description, or a
            name that is not a category.
    """
    out: Dict[str, List[str]] = {}
    for lineno, line in enumerate((text or '').splitlines(), 1):
        if not line.strip():
            continue
        name, sep, desc = line.partition(':')
        if not sep:
            raise DemoInputError(
                f'description line {lineno} has no ":" (write "category: '
                f'description"): {line.strip()[:60]!r}')
        name, desc = ' '.join(name.split()), desc.strip()
        if not desc:
            raise DemoInputError(
                f'description line {lineno} ("{name}") has no text after ":"')
        if len(desc) > 300:
            raise DemoInputError(
                f'description line {lineno} is longer than 300 characters')
        key = match_category(name, categories, 'the description of')
        out.setdefault(key, []).append(desc)
    return out


def parse_examples(slots: Sequence[Tuple[Optional[str], Any]],
                   categories: Sequence[str],
                   max_side: int = MAX_SIDE) -> Dict[str, List[Image.Image]]:
    """Decode the example images given for some categories.

    Args:
        slots (Sequence[tuple]): ``(category name, files)`` pairs from the
            page; ``files`` is None, one path or a list of paths (or
            arrays / PIL images). Slots without files are skipped.
        categories (Sequence[str]): The parsed category names.
        max_side (int): Passed to :func:`load_image`. Defaults to
            :data:`MAX_SIDE`.

    Returns:
        dict: Category -> its decoded example images.

    Raises:
        DemoInputError: Files without a category, an unknown category, too
            many examples, or an unreadable file (the message names it).
    """
    out: Dict[str, List[Image.Image]] = {}
    for i, (name, files) in enumerate(slots, 1):
        if files is None or (isinstance(files, (list, tuple)) and not files):
            continue
        if not isinstance(files, (list, tuple)):
            files = [files]
        if not name or not str(name).strip():
            raise DemoInputError(
                f'example set {i} has images but no category: choose one')
        key = match_category(str(name), categories, f'example set {i}')
        images = out.setdefault(key, [])
        for f in files:
            path = getattr(f, 'name', f)  # tempfile wrappers of old gradio
            try:
                images.append(load_image(path, max_side=max_side))
            except DemoInputError as e:
                shown = path if isinstance(path, str) else 'an image'
                raise DemoInputError(
                    f'example image {shown.rsplit("/", 1)[-1]!r} of "{key}": '
                    f'{e}') from None
        if len(images) > MAX_EXAMPLES_PER_CATEGORY:
            raise DemoInputError(
                f'"{key}" has {len(images)} example images, the limit is '
                f'{MAX_EXAMPLES_PER_CATEGORY}')
    return out
