# Copyright (c) mmprompt contributors. All rights reserved.
"""What the Gradio demo accepts, checked: uploads and text boxes.

- :func:`load_image` decodes an upload with the library's one decoder
  (:func:`mmprompt.utils.image_io.decode_image`).
- :func:`parse_categories`, :func:`parse_descriptions` and
  :func:`parse_examples` read the text boxes and example slots (comma or
  newline separated names; ``name: description`` lines).

Bad input raises :class:`DemoInputError` with a message meant for the page.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from mmprompt.utils.errors import ImageDecodeError
from mmprompt.utils.image_io import decode_image

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


def load_image(image: Optional[ImageInput],
               max_side: int = MAX_SIDE,
               max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode an upload with the library's decoder.

    :func:`mmprompt.utils.image_io.decode_image` checks the pixel budget
    and aspect ratio before decoding, applies the EXIF orientation and
    scales 16-bit images; the result goes to the inferencers as it is, so
    the page gives the answer the API gives for the same file.

    Args:
        image (str | np.ndarray | PIL.Image.Image, optional): A file path, an
            RGB(A)/grayscale array or a PIL image (any mode).
        max_side (int): Unused; kept for callers. Defaults to
            :data:`MAX_SIDE`.
        max_pixels (int): Images with more pixels are refused before being
            decoded. Defaults to :data:`MAX_PIXELS`.

    Returns:
        PIL.Image.Image: The decoded image, in one of
        :data:`mmprompt.utils.image_io.KEPT_MODES`.

    Raises:
        DemoInputError: No image, an unreadable file or one that is too large.
    """
    if image is None or (isinstance(image, str) and not image.strip()):
        raise DemoInputError('no image: upload an image first')
    try:
        return decode_image(
            image, mode=None, max_pixels=max_pixels, name='the upload')
    except ImageDecodeError as e:
        raise DemoInputError(str(e)) from None


# ---------------------------------------------------------------------------
# Text boxes
# ---------------------------------------------------------------------------


def _name_key(name: str) -> Tuple[str, ...]:
    """Names that CLIP reads alike have one key: the tokenizer's pieces
    (case, spacing, full-width letters, HTML entities ignored)."""
    from mmprompt.models.clip.tokenizer import pre_tokens
    return pre_tokens(name)


#: Tokens a name may take: CLIP's 77-token context less the start and end
#: tokens and the longest built-in template around the name.
MAX_NAME_TOKENS = 60


def check_token_lengths(names: Sequence[str]) -> None:
    """Refuse a name the text tower would have to cut (CJK characters take
    2-3 tokens each, so 120 of them do not fit).

    Raises:
        DemoInputError: Naming the first name that is too long.
    """
    from mmprompt.models.clip.tokenizer import CLIPTokenizer
    tokenizer = _tokenizer(CLIPTokenizer)
    for name in names:
        count = len(tokenizer.encode(name))
        if count > MAX_NAME_TOKENS:
            raise DemoInputError(
                f'the category name {name[:20]!r}... is too long for the text '
                f'model: {count} tokens, at most {MAX_NAME_TOKENS}; shorten '
                'it')


_TOKENIZERS: Dict[type, Any] = {}


def _tokenizer(cls: type) -> Any:
    if cls not in _TOKENIZERS:
        _TOKENIZERS[cls] = cls()
    return _TOKENIZERS[cls]


def parse_topk(topk: Any, num_categories: int) -> int:
    """The page's top-k as an int in ``[1, num_categories]``.

    Raises:
        DemoInputError: If it is not a whole number of at least 1.
    """
    try:
        value = float(topk)
    except (TypeError, ValueError):
        raise DemoInputError(
            f'top-k must be a whole number, not {topk!r}') from None
    if value != int(value) or value < 1:
        raise DemoInputError(f'top-k must be a whole number >= 1, not {topk}')
    return min(int(value), num_categories)


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
    check_token_lengths(names)
    seen: Dict[str, List[str]] = {}
    for name in names:
        seen.setdefault(_name_key(name), []).append(name)
    repeated = [spellings for spellings in seen.values() if len(spellings) > 1]
    if repeated:
        shown = ', '.join(' = '.join(f'"{s}"'
                                     for s in dict.fromkeys(spellings)) +
                          f' ({len(spellings)}x)' for spellings in repeated)
        raise DemoInputError(
            f'duplicate categories: {shown}. Each category must appear once '
            '(as the text model reads them: case, spacing and full-width '
            'letters are ignored).')
    return names


def match_category(name: str, categories: Sequence[str], what: str) -> str:
    """Find ``name`` among ``categories`` (as the text model reads them).

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
