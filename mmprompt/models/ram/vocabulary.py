# Copyright (c) mmprompt contributors. All rights reserved.
"""What RAM and RAM++ score: a tag vocabulary, closed or open.

A :class:`TagVocabulary` is the list of tags a model scores: their names
(English, and Chinese when known), their label embeddings and their
thresholds. RAM's own 4585 tags are one (embeddings and thresholds from the
converted checkpoint, names from its ``meta``); so is any set of categories
of your own, whose embeddings :class:`CategoryEncoder` builds with CLIP
ViT-B/16's text tower, as ``recognize-anything`` (Apache-2.0,
``inference_ram_openset.py`` and ``inference_ram_plus_openset.py``) does.
The code is written for mmprompt.
"""
import copy
import sys
from collections import OrderedDict
from typing import (Callable, Dict, List, Mapping, Optional, Sequence,
                    Tuple, Union)

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule

from mmprompt.models.clip.zero_shot import encode_token_ids
from mmprompt.registry import MODELS, TOKENIZER
from mmprompt.utils.errors import InvalidInputError
from .label_embedding import (CategorySpec, TemplateSpec, TextEncoder,
                              build_description_label_embed, load_categories,
                              ram_openset_prompts, resolve_ram_templates,
                              split_categories)

TagNames = Tuple[str, ...]


def check_names(names: Optional[Sequence[str]], num_tags: int,
                what: str) -> Optional[TagNames]:
    """``names`` as a tuple of ``num_tags`` strings (None passes).

    Raises:
        ValueError: On another number of names.
        TypeError: On names that are not strings.
    """
    if names is None:
        return None
    names = tuple(names)
    if len(names) != num_tags:
        raise ValueError(f'{what} has {len(names)} names, the model '
                         f'{num_tags} classes')
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f'{what} must hold strings')
    return names


def check_threshold(threshold: Union[float, str]) -> float:
    """``threshold`` as a float in [0, 1] (NaN is not), else
    :class:`InvalidInputError`, a ``ValueError``. The one threshold rule:
    the models, ImageTagger and tools/infer.py call it."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f'threshold must be a number in [0, 1], got {threshold!r}'
        ) from None
    if not 0 <= value <= 1:
        raise InvalidInputError(f'threshold must lie in [0, 1], got {value}')
    return value


class TagVocabulary:
    """The tags a RAM / RAM++ model scores.

    A tag ``k`` is selected where its sigmoid score is strictly above
    ``thresholds[k]``, unless ``k`` is in ``deleted``. The tensors are
    referenced, not copied: the vocabulary of a model is a view of its
    parameters and buffers (see :attr:`RAM.vocabulary
    <mmprompt.models.ram.RAM.vocabulary>`).

    Args:
        label_embed (torch.Tensor): ``(K * D, C)``: ``D`` embeddings per tag,
            tag-major (``D`` is 1 for RAM, the number of descriptions per
            tag for RAM++).
        thresholds (torch.Tensor): ``(K, )``.
        names (Sequence[str], optional): English names. Defaults to None
            (predictions hold indices only).
        names_chinese (Sequence[str], optional): Chinese names, kept exactly
            (RAM's have trailing spaces). Defaults to None.
        deleted (Sequence[int]): Tags never selected. Defaults to ().
    """

    def __init__(
        self,
        label_embed: torch.Tensor,
        thresholds: torch.Tensor,
        names: Optional[Sequence[str]] = None,
        names_chinese: Optional[Sequence[str]] = None,
        deleted: Sequence[int] = ()
    ) -> None:
        if thresholds.dim() != 1 or not thresholds.numel():
            raise ValueError('thresholds must have shape (K,), got '
                             f'{tuple(thresholds.shape)}')
        num_tags = thresholds.numel()
        if label_embed.dim() != 2 or label_embed.size(0) % num_tags:
            raise ValueError(f'label_embed {tuple(label_embed.shape)} is not '
                             f'(K * D, C) for {num_tags} tags')
        self.label_embed = label_embed
        self.thresholds = thresholds
        self.names = check_names(names, num_tags, 'tag_list')
        self.names_chinese = check_names(names_chinese, num_tags,
                                         'tag_list_chinese')
        self.deleted = tuple(int(i) for i in deleted)
        outside = [i for i in self.deleted if not 0 <= i < num_tags]
        if outside:
            raise ValueError(f'delete_tag_index {outside} outside the '
                             f'{num_tags} classes')

    @property
    def num_tags(self) -> int:
        """int: ``K``, the number of tags."""
        return self.thresholds.numel()

    @property
    def num_descriptions(self) -> int:
        """int: ``D``, the label embeddings per tag."""
        return self.label_embed.size(0) // self.num_tags

    def select(self,
               scores: torch.Tensor,
               threshold: Optional[float] = None) -> torch.Tensor:
        """Threshold scores: ``score > threshold``, deleted tags off.

        Args:
            scores (torch.Tensor): Sigmoid scores, ``(B, K)``.
            threshold (float, optional): One threshold for every tag instead
                of :attr:`thresholds`. Defaults to None.

        Returns:
            torch.Tensor: Boolean ``(B, K)``.
        """
        selected = scores > (
            self.thresholds if threshold is None else threshold)
        if self.deleted:
            selected[:, list(self.deleted)] = False
        return selected

    def names_of(
        self, labels: Sequence[int]
    ) -> Tuple[Optional[List[str]], Optional[List[str]]]:
        """English and Chinese names of tag indices (None where unknown)."""
        return tuple(None if names is None else [names[i] for i in labels]
                     for names in (self.names, self.names_chinese))


@MODELS.register_module()
class CategoryEncoder(BaseModule):
    """Makes a :class:`TagVocabulary` of categories with CLIP's text tower.

    RAM: each category name goes into every prompt template
    (:func:`~.label_embedding.build_openset_label_embed`). RAM++: each
    ``{name: [descriptions]}`` item's descriptions are encoded, cut at the
    context length (:func:`~.label_embedding.build_description_label_embed`).
    Every category gets the same threshold.

    The embeddings of the last :attr:`cache_size` category sets are kept,
    keyed by the categories and templates; new text-tower weights (loaded,
    or initialised by :meth:`init_weights`) empty the cache. The tower's
    weights are not part of a RAM checkpoint: they come from its own
    ``init_cfg``, e.g. ``dict(type='Pretrained', checkpoint=CLIP,
    prefix='text_encoder.')`` with a checkpoint converted by
    ``tools/model_converters/openai_clip_to_mmprompt.py``, and strict
    loading of a RAM checkpoint ignores the tower's missing keys.

    Args:
        text_encoder (dict, optional): Config of CLIP's text tower, e.g.
            ``dict(type='CLIPTextTransformer', init_cfg=...)``. None if the
            embeddings always come from an ``encode_text`` callable passed
            to :meth:`encode`. Defaults to None.
        tokenizer (dict, optional): Config of the tokenizer, built with
            ``TOKENIZER``. Defaults to ``dict(type='CLIPTokenizer')``.
        categories (str | Sequence, optional): The categories of
            :meth:`encode` when it is given none: a list, or a ``.txt`` (one
            name a line) or ``.json`` file. Defaults to None.
        templates (str | Sequence[str]): Prompt templates, see
            :func:`~.label_embedding.resolve_ram_templates`: OpenAI's 80
            ImageNet templates by default; RAM's own 63 are
            ``'ram_openset'``.
            Defaults to ``'openai_imagenet'``.
        threshold (float): Threshold of every category. Defaults to 0.5.
        batch_size (int): Prompts per text-tower call. Defaults to 256.
        cache_size (int): Category sets (or chunks) whose embeddings are
            kept. Defaults to 8.
        chunk_size (int): Plain names embedded and cached together: a
            longer set is embedded in chunks of this many. Defaults to 32.
        init_cfg (dict, optional): Initialization config dict.
            Defaults to None.
    """

    def __init__(self,
                 text_encoder: Optional[dict] = None,
                 tokenizer: Optional[dict] = None,
                 categories: Optional[CategorySpec] = None,
                 templates: TemplateSpec = 'openai_imagenet',
                 threshold: float = 0.5,
                 batch_size: int = 256,
                 cache_size: int = 8,
                 chunk_size: int = 32,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.text_encoder = None
        self.tokenizer = None
        if text_encoder is not None:
            self.text_encoder = MODELS.build(copy.deepcopy(text_encoder))
            self.tokenizer = TOKENIZER.build(
                copy.deepcopy(tokenizer or dict(type='CLIPTokenizer')))
            # New tower weights make the cached embeddings stale.
            self.text_encoder.register_load_state_dict_post_hook(
                self._clear_cache)
        self.categories = categories
        self.templates = resolve_ram_templates(templates)
        self.threshold = check_threshold(threshold)
        self.batch_size = batch_size
        self.cache_size = cache_size
        if chunk_size < 1:
            raise ValueError(f'chunk_size must be >= 1, got {chunk_size}')
        self.chunk_size = chunk_size
        self._cache: 'OrderedDict[tuple, torch.Tensor]' = OrderedDict()
        self.register_load_state_dict_post_hook(self._ignore_text_encoder)

    @staticmethod
    def _ignore_text_encoder(module: nn.Module, incompatible_keys) -> None:
        """Strict loading of a RAM checkpoint: the tower's keys are not in
        it, its weights come from its own ``init_cfg``."""
        missing = incompatible_keys.missing_keys
        for key in [k for k in missing if '.text_encoder.' in '.' + k]:
            missing.remove(key)

    def _clear_cache(self, module: nn.Module, incompatible_keys) -> None:
        """Hook: forget the embeddings built with old weights."""
        self._cache.clear()

    def init_weights(self) -> None:
        """Initialise the tower from its ``init_cfg``; empty the cache."""
        if not self._load_text_encoder():
            super().init_weights()
        self._cache.clear()

    def init_text_encoder(self) -> None:
        """Initialise the tower from its ``init_cfg`` unless done already."""
        if self.text_encoder is not None and not self.text_encoder.is_init:
            if not self._load_text_encoder():
                self.text_encoder.init_weights()
            self._cache.clear()

    def _load_text_encoder(self) -> bool:
        """Load the tower's ``Pretrained`` ``init_cfg`` strictly, or refuse
        in one line: MMEngine's loader only warns when the file holds
        another tower (another CLIP's, of other shapes), and the tags would
        come from random weights. Returns whether it did."""
        cfg = getattr(self.text_encoder, 'init_cfg', None)
        if not isinstance(cfg, dict) or cfg.get('type') != 'Pretrained' \
                or not cfg.get('checkpoint'):
            return False
        from mmprompt.utils.checkpoint import load_checkpoint, read_checkpoint
        path, prefix = cfg['checkpoint'], cfg.get('prefix', '')
        sd, meta = read_checkpoint(path)
        sd = {k: v for k, v in sd.items() if k.startswith(prefix)}
        # Loaded under its prefix (a CLIP checkpoint's 'text_encoder.'), so
        # that the messages read the file's own keys.
        target, name = self.text_encoder, prefix.rstrip('.')
        if name and '.' not in name:
            target = nn.Module()
            target.add_module(name, self.text_encoder)
        else:
            sd = {k[len(prefix):]: v for k, v in sd.items()}
        load_checkpoint(
            target,
            dict(state_dict=sd, meta=meta),
            name=f"{path} (the open set's text tower, CLIP ViT-B/16's: "
            'RAM was trained on its text space)')
        self.text_encoder._is_init = True
        return True

    @torch.no_grad()
    def encode_text(self, texts: List[str]) -> torch.Tensor:
        """Raw CLIP text features of texts, cut at the context length.

        The texts go through the tower in batches of :attr:`batch_size`,
        sorted by length and cut to it, and texts that start alike (a
        template's words before the name) run their start once
        (:func:`~mmprompt.models.clip.zero_shot.encode_token_ids`; exact
        under the causal mask).

        Args:
            texts (List[str]): The texts.

        Returns:
            torch.Tensor: ``(len(texts), C)``, not normalised.
        """
        if self.text_encoder is None:
            raise RuntimeError(
                f'{type(self).__name__} has no text_encoder: configure one '
                'or pass encode_text to set_openset')
        device = next(self.text_encoder.parameters()).device
        tokens = self.tokenizer.tokenize(texts, truncate=True)
        return encode_token_ids(
            self.text_encoder,
            tokens,
            batch_size=self.batch_size,
            device=device,
            normalize=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """The text tower on token ids ``(N, L)``: features ``(N, C)``."""
        return self.text_encoder(tokens)

    def _check_truncation(self, names: Sequence[str],
                          templates: Sequence[str]) -> None:
        """Refuse names whose prompts are the same once cut at the context
        length: they would get identical scores."""
        seen: Dict[bytes, str] = {}
        for name in names:
            if len(name) < 20:  # far below 77 tokens
                continue
            prompts = ram_openset_prompts([name], templates)
            tokens = self.tokenizer.tokenize(prompts, truncate=True)
            key = tokens.numpy().tobytes()
            if key in seen:
                raise ValueError(
                    f'categories {seen[key][:40]!r}... and {name[:40]!r}... '
                    "are the same once cut at the text tower's "
                    f'{tokens.shape[1]} tokens; shorten them')
            seen[key] = name

    def _cached(self, key: tuple,
                build: Callable[[], torch.Tensor]) -> torch.Tensor:
        """``build()``, kept under ``key`` among the last
        :attr:`cache_size`. Single dict operations only: threads share the
        cache (ImageTagger, the demo) and a module holds no lock (it is
        deep-copied)."""
        embed = self._cache.get(key)
        if embed is not None:
            return embed
        embed = build()
        self._cache[key] = embed
        while len(self._cache) > self.cache_size:  # drop the oldest
            try:
                self._cache.popitem(last=False)
            except KeyError:  # another thread emptied it
                break
        return embed

    def _label_embed(self, names: TagNames,
                     descriptions: Mapping[int, Sequence[str]],
                     templates: Sequence[str],
                     encode_text: Optional[TextEncoder]) -> torch.Tensor:
        """``(K * D, C)`` embeddings, from the cache when the tower's.

        A set of more than :attr:`chunk_size` plain names is embedded in
        chunks of that many, each cached as a set of its own, and the whole
        set too: a category's embedding depends on it alone, so this is
        exact; a set sharing chunks with an earlier one embeds only the new
        ones, and other threads' calls run between two chunks. Described
        (RAM++) sets go in one piece.
        """
        if encode_text is not None:
            return build_description_label_embed(names, descriptions,
                                                 templates, encode_text,
                                                 self.batch_size)
        key = (names, tuple(sorted(descriptions.items())), templates)
        step = self.chunk_size
        if descriptions or len(names) <= step:
            return self._cached(
                key, lambda: self._build(names, descriptions, templates))
        return self._cached(
            key, lambda: torch.cat([
                self._label_embed(names[i:i + step], {}, templates, None)
                for i in range(0, len(names), step)
            ]))

    def _build(self, names: TagNames,
               descriptions: Mapping[int, Sequence[str]],
               templates: Sequence[str]) -> torch.Tensor:
        print_log(
            f'Building label embeddings of {len(names)} open-set categories',
            logger='current')
        # All prompts in one call: encode_text batches them itself, and
        # prompts of every category share their template's start.
        return build_description_label_embed(names, descriptions, templates,
                                             self.encode_text, sys.maxsize)

    def encode(self,
               categories: Optional[CategorySpec] = None,
               templates: Optional[TemplateSpec] = None,
               threshold: Optional[float] = None,
               encode_text: Optional[TextEncoder] = None,
               descriptions: bool = True) -> TagVocabulary:
        """The vocabulary of these categories.

        Args:
            categories (str | Sequence, optional): Names and/or ``{name:
                [descriptions]}`` items, or a file (see
                :func:`~.label_embedding.load_categories`). Defaults to the
                configured ``categories``.
            templates (str | Sequence[str], optional): Prompt templates of
                the names. Defaults to the configured ones.
            threshold (float, optional): Threshold of every category.
                Defaults to the configured one.
            encode_text (Callable, optional): ``list[str] -> (N, C)`` raw
                text features, used instead of the tower (nothing is cached
                then). Defaults to None.
            descriptions (bool): Whether items may carry descriptions (RAM++
                mixes them; RAM cannot). Defaults to True.

        Returns:
            TagVocabulary: On the device of the embeddings, with no Chinese
            names.
        """
        categories = self.categories if categories is None else categories
        if categories is None:
            raise ValueError('no categories given and none configured')
        names, described = split_categories(load_categories(categories))
        if described and not descriptions:
            raise ValueError(
                'descriptions per category need RAM++ (RAMPlusOpenset); '
                'RAM takes category names only')
        templates = self.templates if templates is None else \
            resolve_ram_templates(templates)
        threshold = self.threshold if threshold is None else \
            check_threshold(threshold)
        if encode_text is None:
            self._check_truncation(names, templates)
        embed = self._label_embed(names, described, templates, encode_text)
        return TagVocabulary(
            embed.detach(),
            torch.full((len(names), ), threshold, device=embed.device),
            names=names)
