# Copyright (c) mmprompt contributors. All rights reserved.
"""The functions behind the Gradio demo (``demo/gradio_demo.py``).

Everything the page does, except drawing it, lives here and needs no
gradio, so it is unit-tested without a browser. It is the demo's own code,
not the library's: it sits beside ``gradio_demo.py`` and is imported from
there (a script's directory is on ``sys.path``); the library offers what
any caller needs (:func:`mmprompt.utils.image_io.decode_image`, the
inferencers).

- :mod:`demo_inputs` checks what comes in: uploads decoded
  safely (:func:`load_image`) and the text boxes parsed, bad input raising
  :class:`DemoInputError` with a message meant for the page. Its names are
  importable from here too.
- :class:`DemoBackend` is the model interface the page calls:
  ``tag(image, threshold, categories) -> rows`` and ``classify(image,
  categories, descriptions, examples, templates, topk) -> {name: prob}``.
  Tests inject a fake; :class:`MMPromptBackend` wraps
  :class:`mmprompt.apis.ImageTagger` and
  :class:`mmprompt.apis.ZeroShotClassifier`, each built once, lazily
  (:class:`demo_worker.LazyModel`), and called by requests side by side:
  each call passes what it recognises as a value, the models keep none.
- Fairness: a small request runs beside a large open set, not after it.
  The category encoder embeds a large set in chunks of
  :data:`OPEN_SET_CHUNK` names, each kept; its cache is enlarged to hold
  a largest request's chunks beside the small sets (for RAM, 32 names x
  512 floats, 64 KiB a chunk; RAM++ keeps a row per description, 51x
  that), so asking for the same 1,000 names again costs no embedding.
- :func:`run_tagging` and :func:`run_classify` are the page's two event
  handlers minus gradio: raw widget values in, display values out. Given a
  :class:`demo_worker.MemoryBudget`, a request first reserves what its
  images take to decode (read from their headers), so that uploads that
  each pass the decoder's limit cannot together exhaust the server.
"""
import contextlib
import os.path as osp
from typing import (Any, ContextManager, Dict, List, NamedTuple, Optional,
                    Sequence, Tuple)

from PIL import Image

from mmprompt.utils.image_io import estimate_decode_cost
from demo_inputs import (  # noqa: F401 (re-exported for the page)
    MAX_CATEGORIES, MAX_EXAMPLES_PER_CATEGORY, MAX_NAME_CHARS, MAX_PIXELS,
    MAX_SIDE, DemoInputError, ImageInput, load_image, match_category,
    parse_categories, parse_descriptions, parse_examples, parse_topk)
from demo_worker import LazyModel, MemoryBudget

#: Open-set categories the category encoder embeds and keeps together.
OPEN_SET_CHUNK = 32

#: Most tags drawn as bars.
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
python tools/model_converters/ram_to_mmprompt.py ram_swin_large_14m.pth \\
    checkpoints/ram_swin-large-p4-w12_384px_normal.pth \\
    --tag-list ram_tag_list.txt \\
    --tag-list-chinese ram_tag_list_chinese.txt \\
    --thresholds ram_tag_list_threshold.txt
python demo/gradio_demo.py \\
    --ram-checkpoint checkpoints/ram_swin-large-p4-w12_384px_normal.pth \\
    --clip-checkpoint checkpoints/clip_vit-base-p16.pth
```
"""


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

    def learned_prompts(self) -> Optional[str]:
        """What the learned prompts classify with (Markdown), or None when
        Classify uses templates."""
        return None

    def learned_categories(self) -> List[str]:
        """The categories the learned prompts were trained on (the
        categories box starts with them), or [] without learned prompts."""
        return []

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


def _missing(path: Optional[str]) -> bool:
    return not path or not osp.isfile(path)


def _ram_config(name: str) -> Any:
    """Load a tagging config by file or by name in ``configs/ram``."""
    from mmengine.config import Config

    from mmprompt.apis.hub import get_configs_dir
    path = name if osp.isfile(name) else osp.join(get_configs_dir(), 'ram',
                                                  f'{name}.py')
    return Config.fromfile(path)


class MMPromptBackend(DemoBackend):
    """The real backend: mmprompt's inferencers, built lazily, once.

    Each model is built on its first request (not at start-up); requests
    then call it side by side, each passing its own categories.

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
        learned (str, optional): A learned-prompt file of
            ``tools/train.py`` (CoOp, CoCoOp) learned on this CLIP; its
            prompts replace the templates, descriptions and examples. Its
            meta is read here (a bad file is an error at start-up); the
            architecture check runs when the classifier is built.
            Defaults to None.
        allow_other_weights (bool): Use ``learned`` over other CLIP
            weights than it was learned on (refused by default). Defaults
            to False.
        open_set_chunk (int): Open-set categories the category encoder
            embeds and keeps together. Defaults to :data:`OPEN_SET_CHUNK`.
    """

    def __init__(self,
                 clip_config: str,
                 clip_checkpoint: Optional[str] = None,
                 ram_config: Optional[str] = None,
                 ram_checkpoint: Optional[str] = None,
                 ram_text_checkpoint: Optional[str] = None,
                 device: Optional[str] = None,
                 learned: Optional[str] = None,
                 open_set_chunk: int = OPEN_SET_CHUNK,
                 allow_other_weights: bool = False) -> None:
        self.clip_config, self.clip_checkpoint = clip_config, clip_checkpoint
        self.learned = learned
        self.allow_other_weights = allow_other_weights
        self._learned_meta = None
        if learned is not None:
            from mmprompt.models.prompt_learning.learned import \
                read_learned_meta
            self._learned_meta = read_learned_meta(learned)
        if ram_config is None:
            ram_config = RAM_OPENSET_CONFIG if ram_text_checkpoint else \
                RAM_CONFIG
        self.ram_config, self.ram_checkpoint = ram_config, ram_checkpoint
        self.ram_text_checkpoint = ram_text_checkpoint
        self.device = device
        if open_set_chunk < 1:
            raise ValueError(f'open_set_chunk must be >= 1, got '
                             f'{open_set_chunk}')
        self.open_set_chunk = open_set_chunk
        self._classifier = LazyModel(self._build_classifier)
        self._tagger = LazyModel(self._build_tagger)
        self._ram_type: Optional[str] = None

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

    def _model_type(self) -> str:
        if self._ram_type is None:
            try:
                self._ram_type = str(_ram_config(self.ram_config).model.type)
            except Exception:  # reported when the tagger is built
                self._ram_type = ''
        return self._ram_type

    def _is_openset_config(self) -> bool:
        return self._model_type().endswith('Openset')

    def _is_siglip_config(self) -> bool:
        return self._model_type().startswith('SigLIP')

    def open_set_unavailable(self) -> Optional[str]:
        if self._is_siglip_config():
            return None  # its own text tower
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

    def learned_prompts(self) -> Optional[str]:
        meta = self._learned_meta
        if meta is None:
            return None
        names = list(meta.get('categories') or ())
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
            self.clip_config,
            pretrained=self.clip_checkpoint,
            device=self.device,
            learned=self.learned,
            allow_other_weights=self.allow_other_weights)

    def _build_tagger(self) -> Any:
        from mmprompt.apis import ImageTagger
        from mmprompt.apis.image_tagger import text_encoder_from
        overrides: Dict[str, Any] = {}
        if self.open_set_unavailable() is None and \
                not self._is_siglip_config():
            # The text tower's weights come from the CLIP checkpoint.
            overrides['text_encoder'] = text_encoder_from(
                self.ram_text_checkpoint)
        tagger = ImageTagger(
            self.ram_config,
            pretrained=self.ram_checkpoint,
            device=self.device,
            **overrides)
        encoder = getattr(tagger.model, 'category_encoder', None)
        if encoder is not None:
            # Room for the chunks of a largest request beside the sets of
            # the small ones (see the module docstring).
            encoder.chunk_size = self.open_set_chunk
            encoder.cache_size += -(-MAX_CATEGORIES // self.open_set_chunk)
        return tagger

    def tag(self, image: Image.Image, threshold: Optional[float],
            categories: Optional[Sequence[str]]) -> List[TagRow]:
        if categories and self.open_set_unavailable():
            raise DemoInputError(self.open_set_unavailable())
        tagger = self._tagger.get()
        # The model's own tags unless categories are given: never the
        # tagger's default, which another request's call may have set.
        vocabulary = tagger.vocabulary(list(categories)) if categories \
            else tagger.model_vocabulary
        return _tag_rows(
            tagger(
                image,
                categories=vocabulary,
                threshold=threshold,
                sort_by='score'))

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
        result = self._classifier.get()(
            image,
            categories=list(categories),
            templates=templates,
            descriptions=descriptions or None,
            examples=examples or None,
            topk=topk)
        return _class_scores(result)


def _tag_rows(result: Sequence[dict]) -> List[TagRow]:
    """Rows from an :class:`~mmprompt.apis.ImageTagger` result (one image).
    """
    pred = result[0]
    tags = pred['tags'] or [str(i) for i in pred['tag_labels']]
    chinese = pred.get('tags_chinese') or [''] * len(tags)
    return [
        TagRow(str(t), str(z or ''), float(s))
        for t, z, s in zip(tags, chinese, pred['tag_scores'])
    ]


def _class_scores(result: Sequence[dict]) -> Dict[str, float]:
    """``{name: prob}`` from a :class:`~mmprompt.apis.ZeroShotClassifier`
    result (one image)."""
    pred = result[0]
    return {
        str(n): float(s)
        for n, s in zip(pred['topk_classes'], pred['topk_scores'])
    }


# ---------------------------------------------------------------------------
# The page's handlers, minus gradio
# ---------------------------------------------------------------------------


def _admit(budget: Optional[MemoryBudget], image: Any,
           slots: Sequence[Tuple[Optional[str], Any]] = ()
           ) -> ContextManager[None]:
    """Reserve what the upload and the example images take to decode."""
    if budget is None:
        return contextlib.nullcontext()
    files = []
    for _, group in slots:
        if group is not None:
            files.extend(group if isinstance(group, (list, tuple)) else
                         [group])
    cost = sum(
        estimate_decode_cost(getattr(f, 'name', f))
        for f in [image, *files] if f is not None)
    return budget.reserve(cost)


def run_tagging(
    backend: DemoBackend,
    image: Optional[ImageInput],
    threshold: float,
    calibrated: bool,
    open_set: Optional[str],
    budget: Optional[MemoryBudget] = None
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
        budget (MemoryBudget, optional): Where the request reserves its
            memory first. Defaults to None (no admission).

    Returns:
        tuple: See :func:`format_tags`.

    Raises:
        DemoInputError: For bad input, or no room in the budget.
    """
    with _admit(budget, image):
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
                           float(threshold) if use_slider else None,
                           categories)
    return format_tags(rows)


def run_classify(backend: DemoBackend,
                 image: Optional[ImageInput],
                 categories_text: Optional[str],
                 descriptions_text: Optional[str],
                 example_slots: Sequence[Tuple[Optional[str], Any]],
                 templates: Optional[str],
                 topk: int,
                 budget: Optional[MemoryBudget] = None) -> Dict[str, float]:
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
        budget (MemoryBudget, optional): Where the request reserves the
            memory of its upload and example images first. Defaults to
            None (no admission).

    Returns:
        dict: ``{category: probability}``, sorted, at most ``topk``.

    Raises:
        DemoInputError: For bad input, or no room in the budget.
    """
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
        topk = parse_topk(topk, len(categories))
        scores = backend.classify(img, categories, descriptions, examples,
                                  templates, topk)
    return sort_scores(scores, topk)
