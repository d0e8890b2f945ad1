# Copyright (c) mmprompt contributors. All rights reserved.
"""What the Gradio page (``gradio_demo.py``) does, minus drawing it: a
thin layer over ``mmprompt.apis``, tested without a browser. The models are
built once, on first use, then called by requests side by side, each
passing its own vocabulary (long open sets are embedded in cached chunks by
the tagger's category encoder). Bad input raises :class:`DemoInputError`,
whose message the page shows as is."""
import contextlib
import functools
import logging
import os.path as osp
import threading
import traceback
from typing import (Any, Callable, ContextManager, Dict, Iterator, List,
                    NamedTuple, Optional, Sequence, Tuple)

from mmengine.logging import print_log
from PIL import Image

from mmprompt.utils.errors import ImageDecodeError
from mmprompt.utils.image_io import (ImageSource, decode_image,
                                     estimate_decode_cost, format_mb)

Slots = Sequence[Tuple[Optional[str], Any]]

MAX_CATEGORIES = 1000
MAX_NAME_CHARS = 120
#: CLIP's 77 tokens less start, end and the longest built-in template.
MAX_NAME_TOKENS = 60
MAX_EXAMPLES_PER_CATEGORY = 16
MAX_BARS = 30
RAM_CONFIG = 'ram_swin-large-p4-w12_384px_normal'
RAM_OPENSET_CONFIG = 'ram_swin-large-p4-w12_384px_openset'


class DemoInputError(ValueError):
    """Bad user input; its message is shown on the page as is."""


class TagRow(NamedTuple):
    """One tag: English name, Chinese name (or ``''``), score."""
    tag: str
    tag_zh: str
    score: float


def load_image(image: Optional[ImageSource],
               max_pixels: Optional[int] = None) -> Image.Image:
    """Decode an upload as the API does (EXIF, 16 bit, the decoder's
    pixel limit unless ``max_pixels`` is given)."""
    if image is None or (isinstance(image, str) and not image.strip()):
        raise DemoInputError('no image: upload an image first')
    try:
        return decode_image(
            image, mode=None, max_pixels=max_pixels, name='the upload')
    except ImageDecodeError as e:
        raise DemoInputError(str(e)) from None


def split_names(text: Optional[str]) -> List[str]:
    """Names separated by commas (``，`` too), semicolons or newlines,
    inner spaces folded, blanks dropped."""
    text = text or ''
    for sep in ('\n', '，', ';', '；'):
        text = text.replace(sep, ',')
    names = (' '.join(item.split()) for item in text.split(','))
    return [name for name in names if name]


@functools.lru_cache(maxsize=None)
def _tokenizer() -> Any:
    from mmprompt.models.clip.tokenizer import CLIPTokenizer
    return CLIPTokenizer()


def parse_categories(text: Optional[str],
                     max_categories: int = MAX_CATEGORIES) -> List[str]:
    """The categories box as names, refused as the models would refuse
    them (:func:`~mmprompt.models.clip.prompts.check_categories`)."""
    from mmprompt.models.clip.prompts import check_categories
    names = split_names(text)
    if not names:
        raise DemoInputError(
            'no categories: enter category names separated by commas or '
            'newlines, e.g. "cat, dog, car"')
    if len(names) > max_categories:
        raise DemoInputError(f'too many categories: {len(names)}, the limit '
                             f'is {max_categories}')
    for name in names:
        if len(name) > MAX_NAME_CHARS:
            raise DemoInputError(
                f'category names are limited to {MAX_NAME_CHARS} '
                f'characters: {name[:40]!r}... is {len(name)}')
        count = len(_tokenizer().encode(name))
        if count > MAX_NAME_TOKENS:
            raise DemoInputError(
                f'the category name {name[:20]!r}... is too long for the '
                f'text model: {count} tokens, at most {MAX_NAME_TOKENS}; '
                'shorten it')
    try:
        return list(check_categories(names))
    except (ValueError, TypeError) as e:
        raise DemoInputError(str(e)) from None


def match_category(name: str, categories: Sequence[str], what: str) -> str:
    """``name``'s spelling in ``categories`` (as the tokenizer reads)."""
    from mmprompt.models.clip.tokenizer import pre_tokens
    found = {pre_tokens(c): c for c in categories}.get(pre_tokens(name))
    if found is None:
        shown = ', '.join(f'"{c}"' for c in categories[:20])
        raise DemoInputError(f'{what} "{name}" is not one of the categories '
                             f'({shown})')
    return found


def parse_descriptions(text: Optional[str],
                       categories: Sequence[str]) -> Dict[str, List[str]]:
    """``category: description`` lines as ``{category: [texts]}``."""
    out: Dict[str, List[str]] = {}
    for lineno, line in enumerate((text or '').splitlines(), 1):
        if not line.strip():
            continue
        name, sep, desc = line.partition(':')
        name, desc = ' '.join(name.split()), desc.strip()
        if not sep:
            raise DemoInputError(
                f'description line {lineno} has no ":" (write "category: '
                f'description"): {line.strip()[:60]!r}')
        if not desc or len(desc) > 300:
            raise DemoInputError(
                f'description line {lineno} ("{name}") has no text after ":"'
                if not desc else
                f'description line {lineno} is longer than 300 characters')
        key = match_category(name, categories, 'the description of')
        out.setdefault(key, []).append(desc)
    return out


def parse_examples(slots: Slots,
                   categories: Sequence[str]) -> Dict[str, List[Image.Image]]:
    """Decode the ``(category, files)`` example slots, but empty ones."""
    out: Dict[str, List[Image.Image]] = {}
    for i, (name, files) in enumerate(slots, 1):
        if not isinstance(files, (list, tuple)):
            files = [] if files is None else [files]
        if not files:
            continue
        if not name or not str(name).strip():
            raise DemoInputError(
                f'example set {i} has images but no category: choose one')
        key = match_category(str(name), categories, f'example set {i}')
        images = out.setdefault(key, [])
        for f in files:
            path = getattr(f, 'name', f)  # tempfile wrappers of old gradio
            try:
                images.append(load_image(path))
            except DemoInputError as e:
                shown = path if isinstance(path, str) else 'an image'
                raise DemoInputError(
                    f'example image {osp.basename(shown)!r} of "{key}": '
                    f'{e}') from None
        if len(images) > MAX_EXAMPLES_PER_CATEGORY:
            raise DemoInputError(
                f'"{key}" has {len(images)} example images, the limit is '
                f'{MAX_EXAMPLES_PER_CATEGORY}')
    return out


def sort_scores(scores: Dict[str, float],
                topk: Optional[int] = None) -> Dict[str, float]:
    """``{name: score}`` by score (descending, then name), cut to topk."""
    return dict(sorted(((str(k), float(v)) for k, v in scores.items()),
                       key=lambda kv: (-kv[1], kv[0]))[:topk])


def format_tags(rows: Sequence[TagRow], max_bars: int = MAX_BARS) -> tuple:
    """Bars (the best ``max_bars``, ``'tag / 中文'``), table rows, and the
    English and Chinese tags joined by ``' | '``, all by score."""
    rows = sorted(rows, key=lambda r: (-float(r.score), r.tag))
    zh = [(r.tag_zh or '').strip() for r in rows]
    bars = {(f'{r.tag} / {z}' if z else r.tag): float(r.score)
            for r, z in zip(rows[:max_bars], zh)}
    table = [[r.tag, z, round(float(r.score), 4)] for r, z in zip(rows, zh)]
    return (bars, table, ' | '.join(r.tag for r in rows),
            ' | '.join(z or r.tag for r, z in zip(rows, zh)))


def _tag_rows(result: Sequence[dict]) -> List[TagRow]:
    """Rows of an :class:`~mmprompt.apis.ImageTagger` result (one image)."""
    pred = result[0]
    tags = pred['tags'] or [str(i) for i in pred['tag_labels']]
    chinese = pred.get('tags_chinese') or [''] * len(tags)
    return [TagRow(str(t), str(z or ''), float(s))
            for t, z, s in zip(tags, chinese, pred['tag_scores'])]


def _class_scores(result: Sequence[dict]) -> Dict[str, float]:
    """``{name: prob}`` of a ZeroShotClassifier result (one image)."""
    pred = result[0]
    return {str(n): float(s)
            for n, s in zip(pred['topk_classes'], pred['topk_scores'])}


class LazyModel:
    """Build on first use, once, whichever thread asks first; a failed
    build is logged and reported to every later request."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build, self._obj, self._error = build, None, None
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._obj is None and self._error is None:
                try:
                    self._obj = self._build()
                except Exception as e:
                    print_log('Building a demo model failed:\n' +
                              traceback.format_exc(), 'current', logging.ERROR)
                    self._error = f'{type(e).__name__}: {e}'
        if self._error is not None:
            raise RuntimeError(f'the model could not be loaded '
                               f'({self._error}); see the server log')
        return self._obj


class MemoryBudget:
    """Requests reserve what their images take to decode from ``total``
    bytes; one that does not fit waits up to ``wait`` seconds, then is
    refused (at once if larger than the whole budget)."""

    def __init__(self, total: int, wait: float = 30.0) -> None:
        if total <= 0:
            raise ValueError(f'a memory budget must be > 0, got {total}')
        self.total, self.wait, self.used = int(total), wait, 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        nbytes = max(int(nbytes), 0)
        if nbytes > self.total:
            raise DemoInputError(
                f'this request would take {format_mb(nbytes / 1e6)} MB to '
                'decode, more than the demo allows '
                f'({format_mb(self.total / 1e6)} MB); use a smaller image')
        with self._cond:
            if not self._cond.wait_for(
                    lambda: self.used + nbytes <= self.total, self.wait):
                raise DemoInputError('the demo is busy with other large '
                                     'images; try again in a minute')
            self.used += nbytes
        try:
            yield
        finally:
            with self._cond:
                self.used -= nbytes
                self._cond.notify_all()


def convert_help(config: Optional[str], fallback: str, what: str,
                 flag: str) -> str:
    """A tab's help without a checkpoint: where to put the zoo row's files
    (``fallback``'s for a config file) and the converter command."""
    from mmprompt.apis.hub import convert_command, get_home, manual_files
    from mmprompt.apis.model_zoo import load_zoo
    zoo, home = load_zoo(), get_home()
    info = zoo.get(config or fallback)
    info = info if info and info.weights else zoo[fallback]
    files = ', '.join(f'{url} to {path}' for url, path in
                      manual_files(info, home))
    command = convert_command(info, f'checkpoints/{info.name}.pth', home)
    return (f'**{what} is disabled: no checkpoint.** Download {files}; '
            f'convert and pass the result as `{flag}`:\n\n    {command}\n')


def _missing(path: Optional[str], help_text: str) -> Optional[str]:
    if path and osp.isfile(path):
        return None
    return help_text + (f'\n\n`{path}` does not exist.' if path else '')


class MMPromptBackend:
    """The models behind the page: mmprompt's inferencers, each built on its
    first request (tests replace :meth:`tag` and :meth:`classify`). A
    ``*_unavailable`` reason (Markdown) replaces a tab's inputs.

    Args:
        clip_config, ram_config (str): Zoo names or config files (tagging:
            :data:`RAM_OPENSET_CONFIG` with a ``ram_text_checkpoint``, CLIP
            ViT-B/16 for the open set, else :data:`RAM_CONFIG`).
        clip_checkpoint, ram_checkpoint (str, optional): Without one, its
            tab is off. ``learned``: a learned-prompt file of tools/train.py
            whose prompts replace templates, descriptions and examples.
    """

    def __init__(self, clip_config: str, clip_checkpoint: Optional[str] = None,
                 ram_config: Optional[str] = None,
                 ram_checkpoint: Optional[str] = None,
                 ram_text_checkpoint: Optional[str] = None,
                 device: Optional[str] = None, learned: Optional[str] = None,
                 allow_other_weights: bool = False) -> None:
        self.clip_config, self.clip_checkpoint = clip_config, clip_checkpoint
        self.learned, self.allow_other_weights = learned, allow_other_weights
        from mmprompt.models.prompt_learning.learned import \
            read_learned_meta
        self._learned_meta = read_learned_meta(learned) if learned else None
        self.ram_config = ram_config or (RAM_OPENSET_CONFIG if
                                         ram_text_checkpoint else RAM_CONFIG)
        self.ram_checkpoint, self.device = ram_checkpoint, device
        self.ram_text_checkpoint = ram_text_checkpoint
        self._classifier = LazyModel(self._build_classifier)
        self._tagger = LazyModel(self._build_tagger)
        self._ram_type: Optional[str] = None

    def clip_unavailable(self) -> Optional[str]:
        return _missing(self.clip_checkpoint, convert_help(
            self.clip_config, 'clip_vit-base-p16', 'Classify',
            '--clip-checkpoint'))

    def ram_unavailable(self) -> Optional[str]:
        return _missing(self.ram_checkpoint, convert_help(
            self.ram_config, RAM_CONFIG, 'Tagging', '--ram-checkpoint'))

    def _model_type(self) -> str:
        if self._ram_type is None:
            from mmprompt.apis.model_zoo import load_config
            try:
                cfg = load_config(self.ram_config)[0]
                self._ram_type = str(cfg.model.type)
            except Exception:  # reported when the tagger is built
                self._ram_type = ''
        return self._ram_type

    def open_set_unavailable(self) -> Optional[str]:
        if self._model_type().startswith('SigLIP'):
            return None  # its own text tower
        if not (self.ram_text_checkpoint
                and osp.isfile(self.ram_text_checkpoint)):
            return ('The open set needs CLIP ViT-B/16\'s text tower: start '
                    'the demo with --ram-text-checkpoint (or --clip-'
                    'checkpoint of clip_vit-base-p16).')
        if not self._model_type().endswith('Openset'):
            return (f'The open set needs an open-set RAM config, e.g. '
                    f'{RAM_OPENSET_CONFIG}; {self.ram_config} is not one.')
        return None

    def template_sets(self) -> List[str]:
        from mmprompt.models.clip.prompts import TEMPLATE_SETS
        # The cheap set first: 80 templates take seconds per list on a CPU.
        return sorted(TEMPLATE_SETS, key=lambda n: (n != 'simple', n))

    def learned_prompts(self) -> Optional[str]:
        meta = self._learned_meta
        if meta is None:
            return None
        names = self.learned_categories()
        context = ('class-specific: only these names'
                   if meta.get('csc') else 'unified: any names')
        shown = ', '.join(names[:10]) + (', ...' if len(names) > 10 else '')
        return (f"**Learned prompts:** `{osp.basename(self.learned)}` "
                f"({meta.get('method')}, {meta.get('n_ctx')} context "
                f'vectors, {context}), trained on {len(names)} categories: '
                f'{shown}. They replace the templates, descriptions and '
                'examples.')

    def learned_categories(self) -> List[str]:
        meta = self._learned_meta
        return list(meta.get('categories') or ()) if meta else []

    def _build_classifier(self) -> Any:
        from mmprompt.apis import ZeroShotClassifier
        return ZeroShotClassifier(
            self.clip_config, self.clip_checkpoint, self.device,
            learned=self.learned, allow_other_weights=self.allow_other_weights)

    def _build_tagger(self) -> Any:
        from mmprompt.apis import ImageTagger
        from mmprompt.apis.image_tagger import text_encoder_from
        overrides = {}
        if self.open_set_unavailable() is None and \
                not self._model_type().startswith('SigLIP'):
            overrides['text_encoder'] = text_encoder_from(
                self.ram_text_checkpoint)
        return ImageTagger(self.ram_config, self.ram_checkpoint, self.device,
                           **overrides)

    def tag(self, image: Image.Image, threshold: Optional[float],
            categories: Optional[Sequence[str]]) -> List[TagRow]:
        if categories and self.open_set_unavailable():
            raise DemoInputError(self.open_set_unavailable())
        tagger = self._tagger.get()
        # Never the tagger's default, which another request may have set.
        vocabulary = tagger.vocabulary(list(categories)) if categories \
            else tagger.model_vocabulary
        return _tag_rows(tagger(image, categories=vocabulary,
                                threshold=threshold, sort_by='score'))

    def classify(self, image: Image.Image, categories: Sequence[str],
                 descriptions: Dict[str, List[str]],
                 examples: Dict[str, List[Image.Image]], templates: str,
                 topk: int) -> Dict[str, float]:
        if self.learned is not None:
            if descriptions or examples:
                raise DemoInputError(
                    'the learned prompts replace descriptions and example '
                    'images: leave them empty')
            templates = None  # the learned context is the prompt
        return _class_scores(self._classifier.get()(
            image, categories=list(categories), templates=templates,
            descriptions=descriptions or None, examples=examples or None,
            topk=topk))


def _admit(budget: Optional[MemoryBudget], image: Any,
           slots: Slots = ()) -> ContextManager[None]:
    """Reserve what the upload and the example images take to decode."""
    if budget is None:
        return contextlib.nullcontext()
    files = [image]
    for _, group in slots:
        files += group if isinstance(group, (list, tuple)) else [group]
    return budget.reserve(sum(estimate_decode_cost(getattr(f, 'name', f))
                              for f in files if f is not None))


def run_tagging(backend: MMPromptBackend, image: Optional[ImageSource],
                threshold: float, calibrated: bool, open_set: Optional[str],
                budget: Optional[MemoryBudget] = None) -> tuple:
    """The tagging tab's handler: widget values in, :func:`format_tags`
    out. The open set always uses the slider's threshold."""
    with _admit(budget, image):
        img = load_image(image)
        categories = None
        if (open_set or '').strip():
            categories = parse_categories(open_set)
        if not 0.0 <= float(threshold) <= 1.0:
            raise DemoInputError(f'threshold {threshold} is not in [0, 1]')
        use_slider = categories is not None or not calibrated
        return format_tags(backend.tag(
            img, float(threshold) if use_slider else None, categories))


def run_classify(backend: MMPromptBackend, image: Optional[ImageSource],
                 categories_text: Optional[str],
                 descriptions_text: Optional[str], example_slots: Slots,
                 templates: Optional[str], topk: Any,
                 budget: Optional[MemoryBudget] = None) -> Dict[str, float]:
    """The classify tab's handler: ``{category: probability}``, sorted,
    at most ``topk``; no template set picks the backend's first."""
    with _admit(budget, image, example_slots):
        img = load_image(image)
        categories = parse_categories(categories_text)
        descriptions = parse_descriptions(descriptions_text, categories)
        examples = parse_examples(example_slots, categories)
        choices = backend.template_sets()
        templates = templates or choices[0]
        if templates not in choices:
            raise DemoInputError(f'unknown template set {templates!r}; '
                                 f'choose one of {choices}')
        if not isinstance(topk, (int, float)) or topk < 1 or \
                not float(topk).is_integer():
            raise DemoInputError(f'top-k must be a whole number >= 1, not '
                                 f'{topk!r}')
        topk = min(int(topk), len(categories))
        scores = backend.classify(img, categories, descriptions, examples,
                                  templates, topk)
    return sort_scores(scores, topk)
