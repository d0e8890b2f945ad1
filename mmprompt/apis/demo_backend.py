# Copyright (c) mmprompt contributors. All rights reserved.
"""The functions behind the Gradio demo (``demo/gradio_demo.py``).

Everything the page does, except drawing it, lives here and needs no
gradio, so it is unit-tested without a browser:

- :func:`load_image` decodes an upload safely: PIL's decompression-bomb
  guard, JPEG draft decoding, a downscale to a bounded size, and grayscale,
  palette, RGBA (over white) and 16-bit images turned into 8-bit RGB.
- :func:`parse_categories` and :func:`parse_descriptions` read the text
  boxes (comma or newline separated names; ``name: description`` lines) and
  raise :class:`DemoInputError` with a message meant for the page.
- :class:`DemoBackend` is the model interface the page calls:
  ``tag(image, threshold, categories) -> rows`` and ``classify(image,
  categories, descriptions, examples, templates, topk) -> {name: prob}``.
  Tests inject a fake; :class:`MMPromptBackend` wraps
  :class:`mmprompt.apis.ImageTagger` and
  :class:`mmprompt.apis.ZeroShotClassifier`, each built once, lazily, and
  called on its own single worker thread (the models keep category
  prototypes as state, so concurrent requests must not interleave).
- :func:`run_tagging` and :func:`run_classify` are the page's two event
  handlers minus gradio: raw widget values in, display values out.
"""
import logging
import os.path as osp
import re
import traceback
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import (Any, Callable, Dict, List, NamedTuple, Optional, Sequence,
                    Tuple, Union)

import numpy as np
from mmengine.logging import print_log
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
MAX_BARS = 30

#: RAM configs (names in ``configs/ram``) used when none is given.
RAM_CONFIG = 'ram_swin-large-p4-w12_384px_normal'
RAM_OPENSET_CONFIG = 'ram_swin-large-p4-w12_384px_openset'

#: How to get checkpoints, shown in place of a tab whose model is missing.
CLIP_HELP = """\
**Classify is disabled: no CLIP checkpoint.** Convert OpenAI's weights and
restart the demo with them:

```shell
# ViT-B-16.pt from github.com/openai/CLIP (clip.available_models())
python tools/model_converters/openai_clip_to_mmprompt.py \\
    ViT-B-16.pt checkpoints/clip_vit-base-p16.pth
python demo/gradio_demo.py --clip-checkpoint checkpoints/clip_vit-base-p16.pth
```
"""
RAM_HELP = """\
**Tagging is disabled: no RAM checkpoint.** Convert the Recognize Anything
weights with their tag lists and restart the demo with them (the CLIP
ViT-B/16 checkpoint also enables the open set):

```shell
# ram_swin_large_14m.pth: huggingface.co/xinyu1205/recognize_anything_model
# the tag lists: ram/data/ of github.com/xinyu1205/recognize-anything
python tools/model_converters/ram_to_mmprompt.py \\
    ram_swin_large_14m.pth checkpoints/ram_swin-large-14m.pth \\
    --tag-list ram_tag_list.txt \\
    --tag-list-chinese ram_tag_list_chinese.txt \\
    --thresholds ram_tag_list_threshold.txt
python demo/gradio_demo.py \\
    --ram-checkpoint checkpoints/ram_swin-large-14m.pth \\
    --clip-checkpoint checkpoints/clip_vit-base-p16.pth
```
"""


class DemoInputError(ValueError):
    """Bad user input; its message is shown on the page as is."""


class TagRow(NamedTuple):
    """One predicted tag.

    Attributes:
        tag (str): English name.
        tag_zh (str): Chinese name, ``''`` for open-set categories.
        score (float): Probability in ``[0, 1]``.
    """
    tag: str
    tag_zh: str
    score: float


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


# ---------------------------------------------------------------------------
# Result formatting
# ---------------------------------------------------------------------------


def sort_scores(scores: Dict[str, float],
                topk: Optional[int] = None) -> Dict[str, float]:
    """Sort ``{name: score}`` by score (descending, then name) and cut it.

    Args:
        scores (dict): Name -> score.
        topk (int, optional): Keep this many. Defaults to all.

    Returns:
        dict: An ordered ``{name: float}`` (what ``gr.Label`` shows).
    """
    items = sorted(((str(k), float(v)) for k, v in scores.items()),
                   key=lambda kv: (-kv[1], kv[0]))
    return dict(items[:topk] if topk is not None else items)


def format_tags(
    rows: Sequence[TagRow],
    max_bars: int = MAX_BARS
) -> Tuple[Dict[str, float], List[List[Any]], str, str]:
    """Turn tag rows into what the tagging tab shows.

    Args:
        rows (Sequence[TagRow]): Predicted tags, any order.
        max_bars (int): Bars in the chart at most (a low threshold can
            select thousands of tags); the table and the text keep all.
            Defaults to :data:`MAX_BARS`.

    Returns:
        tuple: ``{"tag / 中文": score}`` for the bar chart (the best
        ``max_bars``), table rows ``[tag, 中文, score]`` sorted by score,
        and the English and Chinese tags joined with ``' | '`` in the same
        order.
    """
    rows = sorted(rows, key=lambda r: (-float(r.score), r.tag))
    bars, table = {}, []
    for r in rows:
        zh = (r.tag_zh or '').strip()
        if len(bars) < max_bars:
            bars[f'{r.tag} / {zh}' if zh else r.tag] = float(r.score)
        table.append([r.tag, zh, round(float(r.score), 4)])
    english = ' | '.join(r.tag for r in rows)
    chinese = ' | '.join((r.tag_zh or '').strip() or r.tag for r in rows)
    return bars, table, english, chinese


# ---------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------


class DemoBackend:
    """The model interface of the demo page.

    Subclasses implement :meth:`tag` and :meth:`classify`; inputs arrive
    already checked (a decoded RGB image, parsed names). A tab whose model
    is unavailable is disabled and shows :meth:`ram_unavailable` or
    :meth:`clip_unavailable` instead.
    """

    def ram_unavailable(self) -> Optional[str]:
        """Why tagging is off (Markdown), or None when it works."""
        return None

    def clip_unavailable(self) -> Optional[str]:
        """Why classification is off (Markdown), or None when it works."""
        return None

    def open_set_unavailable(self) -> Optional[str]:
        """Why open-set tagging is off, or None when it works."""
        return None

    def template_sets(self) -> List[str]:
        """Names of the prompt template sets offered on the page."""
        return ['simple']

    def tag(self, image: Image.Image, threshold: Optional[float],
            categories: Optional[Sequence[str]]) -> List[TagRow]:
        """Tag an image.

        Args:
            image (PIL.Image.Image): An RGB image.
            threshold (float, optional): Global score threshold; None uses
                RAM's calibrated per-tag thresholds (closed set) or the
                model's default (open set).
            categories (Sequence[str], optional): Open-set categories to tag
                against instead of RAM's tag list.

        Returns:
            list[TagRow]: The predicted tags.
        """
        raise NotImplementedError

    def classify(self, image: Image.Image, categories: Sequence[str],
                 descriptions: Dict[str, List[str]],
                 examples: Dict[str, List[Image.Image]], templates: str,
                 topk: int) -> Dict[str, float]:
        """Classify an image among categories.

        Args:
            image (PIL.Image.Image): An RGB image.
            categories (Sequence[str]): Category names.
            descriptions (dict): Category -> descriptions (may be empty).
            examples (dict): Category -> example images (may be empty).
            templates (str): Name of a template set.
            topk (int): How many categories to return.

        Returns:
            dict: ``{category: probability}`` of the top-k.
        """
        raise NotImplementedError


class _ModelWorker:
    """Build a model on first use, once, and run every call on one thread.

    One thread per model serialises the requests (the inferencers keep the
    current categories as state) and keeps memory flat: PyTorch's CPU
    kernels start an OpenMP thread team for each new calling thread, so
    calls from gradio's pool of worker threads would grow the process by a
    team per pool thread.

    Args:
        build (Callable): Makes the model.
        name (str): Name prefix of the worker thread.
    """

    def __init__(self, build: Callable[[], Any], name: str) -> None:
        self._build = build
        self._obj = None
        self._error: Optional[str] = None
        # The thread starts with the first call, not here.
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=name)

    def _get(self) -> Any:
        if self._obj is None and self._error is None:
            try:
                self._obj = self._build()
            except Exception as e:  # shown on the page, logged in full
                print_log(
                    'Building a demo model failed:\n' + traceback.format_exc(),
                    logger='current',
                    level=logging.ERROR)
                self._error = f'{type(e).__name__}: {e}'
        if self._error is not None:
            raise RuntimeError(f'the model could not be loaded '
                               f'({self._error}); see the server log')
        return self._obj

    def run(self, fn: Callable[[Any], Any]) -> Any:
        """Call ``fn(model)`` on the worker thread and wait for it.

        Raises:
            RuntimeError: If the model could not be built (now or before).
        """
        return self._executor.submit(lambda: fn(self._get())).result()


def _missing(path: Optional[str]) -> bool:
    return not path or not osp.isfile(path)


def _ram_config(name: str) -> Any:
    """Load a RAM config by file or by name in ``configs/ram``."""
    from mmengine.config import Config

    from mmprompt.apis.hub import get_configs_dir
    path = name if osp.isfile(name) else osp.join(get_configs_dir(), 'ram',
                                                  f'{name}.py')
    return Config.fromfile(path)


class MMPromptBackend(DemoBackend):
    """The real backend: mmprompt's inferencers, built lazily, once.

    Each model is built on its first request (not at start-up) and used
    from its own single worker thread: both inferencers keep the current
    categories as state, so one request's categories must not leak into
    another's.

    Args:
        clip_config (str): CLIP model name (``'clip_vit-base-p16'``) or
            config file.
        clip_checkpoint (str, optional): Converted CLIP checkpoint; without
            it, classification is disabled. Defaults to None.
        ram_config (str, optional): RAM config name (in ``configs/ram``) or
            file. Defaults to None: :data:`RAM_OPENSET_CONFIG` when
            ``ram_text_checkpoint`` is given, else :data:`RAM_CONFIG`.
        ram_checkpoint (str, optional): Converted RAM checkpoint; without it,
            tagging is disabled. Defaults to None.
        ram_text_checkpoint (str, optional): Converted CLIP ViT-B/16
            checkpoint whose text tower embeds open-set categories; without
            it (or with a closed-set config) the open set is disabled.
            Defaults to None.
        device (str, optional): Torch device. Defaults to None (CPU).
    """

    def __init__(self,
                 clip_config: str,
                 clip_checkpoint: Optional[str] = None,
                 ram_config: Optional[str] = None,
                 ram_checkpoint: Optional[str] = None,
                 ram_text_checkpoint: Optional[str] = None,
                 device: Optional[str] = None) -> None:
        self.clip_config, self.clip_checkpoint = clip_config, clip_checkpoint
        if ram_config is None:
            ram_config = RAM_OPENSET_CONFIG if ram_text_checkpoint else \
                RAM_CONFIG
        self.ram_config, self.ram_checkpoint = ram_config, ram_checkpoint
        self.ram_text_checkpoint = ram_text_checkpoint
        self.device = device
        self._classifier = _ModelWorker(self._build_classifier, 'demo-clip')
        self._tagger = _ModelWorker(self._build_tagger, 'demo-ram')
        self._ram_openset: Optional[bool] = None

    def clip_unavailable(self) -> Optional[str]:
        if _missing(self.clip_checkpoint):
            found = (f'\n\n`{self.clip_checkpoint}` does not exist.'
                     if self.clip_checkpoint else '')
            return CLIP_HELP + found
        return None

    def ram_unavailable(self) -> Optional[str]:
        if _missing(self.ram_checkpoint):
            found = (f'\n\n`{self.ram_checkpoint}` does not exist.'
                     if self.ram_checkpoint else '')
            return RAM_HELP + found
        return None

    def _is_openset_config(self) -> bool:
        if self._ram_openset is None:
            try:
                model_type = str(_ram_config(self.ram_config).model.type)
            except Exception:  # reported when the tagger is built
                model_type = ''
            self._ram_openset = model_type.endswith('Openset')
        return self._ram_openset

    def open_set_unavailable(self) -> Optional[str]:
        if _missing(self.ram_text_checkpoint):
            return ('The open set needs CLIP ViT-B/16\'s text tower: start '
                    'the demo with --ram-text-checkpoint (or --clip-'
                    'checkpoint of clip_vit-base-p16).')
        if not self._is_openset_config():
            return (f'The open set needs an open-set RAM config, e.g. '
                    f'{RAM_OPENSET_CONFIG}; {self.ram_config} is not one.')
        return None

    def template_sets(self) -> List[str]:
        from mmprompt.models.clip.prompts import TEMPLATE_SETS

        # The cheap one first: the 80 ImageNet templates take seconds to
        # encode for every new category list on a CPU.
        return sorted(TEMPLATE_SETS, key=lambda n: (n != 'simple', n))

    def _build_classifier(self) -> Any:
        from mmprompt.apis import ZeroShotClassifier
        return ZeroShotClassifier(
            self.clip_config,
            pretrained=self.clip_checkpoint,
            device=self.device)

    def _build_tagger(self) -> Any:
        from mmprompt.apis import ImageTagger
        overrides: Dict[str, Any] = {}
        if self.open_set_unavailable() is None:
            # The text tower's weights come from the CLIP checkpoint.
            overrides['text_encoder'] = dict(
                init_cfg=dict(
                    type='Pretrained',
                    checkpoint=self.ram_text_checkpoint,
                    prefix='text_encoder.'))
        return ImageTagger(
            self.ram_config,
            pretrained=self.ram_checkpoint,
            device=self.device,
            **overrides)

    def tag(self, image: Image.Image, threshold: Optional[float],
            categories: Optional[Sequence[str]]) -> List[TagRow]:
        if categories and self.open_set_unavailable():
            raise DemoInputError(self.open_set_unavailable())

        def run(tagger: Any) -> list:
            if categories:
                return tagger(
                    image,
                    categories=list(categories),
                    threshold=threshold,
                    sort_by='score')
            tagger.clear_categories()  # a previous request's open set
            return tagger(image, threshold=threshold, sort_by='score')

        result = self._tagger.run(run)
        return _tag_rows(result)

    def classify(self, image: Image.Image, categories: Sequence[str],
                 descriptions: Dict[str, List[str]],
                 examples: Dict[str, List[Image.Image]], templates: str,
                 topk: int) -> Dict[str, float]:
        result = self._classifier.run(lambda classifier: classifier(
            image,
            categories=list(categories),
            templates=templates,
            descriptions=descriptions or None,
            examples=examples or None,
            topk=topk))
        return _class_scores(result)


def _tag_rows(result: Sequence[dict]) -> List[TagRow]:
    """Rows from an :class:`~mmprompt.apis.ImageTagger` result (one image).
    """
    pred = result[0]
    tags = pred['pred_tags'] or [str(i) for i in pred['pred_labels']]
    chinese = pred.get('pred_tags_chinese') or [''] * len(tags)
    return [
        TagRow(str(t), str(z or ''), float(s))
        for t, z, s in zip(tags, chinese, pred['pred_scores'])
    ]


def _class_scores(result: Sequence[dict]) -> Dict[str, float]:
    """``{name: prob}`` from a :class:`~mmprompt.apis.ZeroShotClassifier`
    result (one image)."""
    pred = result[0]
    return {
        str(n): float(s)
        for n, s in zip(pred['pred_classes'], pred['pred_scores'])
    }


# ---------------------------------------------------------------------------
# The page's handlers, minus gradio
# ---------------------------------------------------------------------------


def run_tagging(backend: DemoBackend, image: Optional[ImageInput],
                threshold: float, calibrated: bool, open_set: Optional[str]
                ) -> Tuple[Dict[str, float], List[List[Any]], str, str]:
    """The tagging tab's handler.

    Args:
        backend (DemoBackend): The models.
        image (str | np.ndarray | PIL.Image.Image, optional): The upload.
        threshold (float): The slider's threshold in ``[0, 1]``.
        calibrated (bool): Use RAM's per-tag thresholds instead of the
            slider (closed set only; the open set always uses the slider).
        open_set (str, optional): Categories to tag against; empty means
            RAM's own tag list.

    Returns:
        tuple: See :func:`format_tags`.

    Raises:
        DemoInputError: For bad input.
    """
    img = load_image(image)
    categories = None
    if (open_set or '').strip():
        why_not = backend.open_set_unavailable()
        if why_not:
            raise DemoInputError(why_not)
        categories = parse_categories(open_set)
    if not 0.0 <= float(threshold) <= 1.0:
        raise DemoInputError(f'threshold {threshold} is not in [0, 1]')
    use_slider = categories is not None or not calibrated
    rows = backend.tag(img,
                       float(threshold) if use_slider else None, categories)
    return format_tags(rows)


def run_classify(backend: DemoBackend, image: Optional[ImageInput],
                 categories_text: Optional[str],
                 descriptions_text: Optional[str],
                 example_slots: Sequence[Tuple[Optional[str], Any]],
                 templates: Optional[str], topk: int) -> Dict[str, float]:
    """The classify tab's handler.

    Args:
        backend (DemoBackend): The models.
        image (str | np.ndarray | PIL.Image.Image, optional): The upload.
        categories_text (str, optional): Category names.
        descriptions_text (str, optional): ``name: description`` lines.
        example_slots (Sequence[tuple]): ``(category, files)`` pairs.
        templates (str, optional): Template set name; None or empty picks
            the backend's first.
        topk (int): How many categories to show.

    Returns:
        dict: ``{category: probability}``, sorted, at most ``topk``.

    Raises:
        DemoInputError: For bad input.
    """
    img = load_image(image)
    categories = parse_categories(categories_text)
    descriptions = parse_descriptions(descriptions_text, categories)
    examples = parse_examples(example_slots, categories)
    choices = backend.template_sets()
    templates = templates or choices[0]
    if templates not in choices:
        raise DemoInputError(f'unknown template set {templates!r}; choose '
                             f'one of {choices}')
    topk = max(1, min(int(topk), len(categories)))
    scores = backend.classify(img, categories, descriptions, examples,
                              templates, topk)
    return sort_scores(scores, topk)
