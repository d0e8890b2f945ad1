# Copyright (c) mmprompt contributors. All rights reserved.
"""What RAM and RAM++ score: a tag vocabulary, closed or open (open sets
after ``recognize-anything``'s ``inference_ram*_openset.py``, Apache-2.0).
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
    """``names`` as a tuple of ``num_tags`` strings (None passes)."""
    if names is None:
        return None
    names = tuple(names)
    if len(names) != num_tags:
        raise ValueError(f'{what} has {len(names)} names, the model '
                         f'{num_tags} classes')
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f'{what} must hold strings')
    return names


def check_deleted(deleted: Sequence[int], num_tags: int) -> Tuple[int, ...]:
    """``deleted`` as a tuple of tag indices in ``[0, num_tags)``."""
    deleted = tuple(int(i) for i in deleted)
    outside = [i for i in deleted if not 0 <= i < num_tags]
    if outside:
        raise ValueError(f'delete_tag_index {outside} outside the '
                         f'{num_tags} classes')
    return deleted


def check_threshold(threshold: Union[float, str]) -> float:
    """``threshold`` as a float in [0, 1] (NaN is not), else
    :class:`InvalidInputError`: the one threshold rule."""
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
    """The tags a RAM / RAM++ model scores (tensors referenced, not
    copied).

    Args:
        label_embed (torch.Tensor): ``(K * D, C)``, ``D`` embeddings per tag
            (RAM++'s descriptions; 1 for RAM), tag-major.
        thresholds (torch.Tensor): ``(K, )``.
        names (Sequence[str], optional): English names. Defaults to None.
        names_chinese (Sequence[str], optional): Chinese names, kept exactly
            (RAM's have trailing spaces). Defaults to None.
        deleted (Sequence[int]): Tags never selected. Defaults to ().
    """

    def __init__(self,
                 label_embed: torch.Tensor,
                 thresholds: torch.Tensor,
                 names: Optional[Sequence[str]] = None,
                 names_chinese: Optional[Sequence[str]] = None,
                 deleted: Sequence[int] = ()) -> None:
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
        self.deleted = check_deleted(deleted, num_tags)

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
        """Boolean ``(B, K)``: ``score > threshold``, deleted tags off.

        Args:
            scores (torch.Tensor): Sigmoid scores, ``(B, K)``.
            threshold (float, optional): One threshold for every tag instead
                of :attr:`thresholds`. Defaults to None.
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
    """Makes a :class:`TagVocabulary` of categories with CLIP's text tower,
    caching recent sets. The tower is not in a RAM checkpoint: it loads from
    its own ``init_cfg`` (``Pretrained``, ``prefix='text_encoder.'``).

    Args:
        text_encoder (dict, optional): Config of CLIP's text tower (None:
            :meth:`encode` is given ``encode_text``). Defaults to None.
        tokenizer (dict, optional): Config of the tokenizer.
            Defaults to ``dict(type='CLIPTokenizer')``.
        categories (str | Sequence, optional): Default categories of
            :meth:`encode`. Defaults to None.
        templates (str | Sequence[str]): Prompt templates.
            Defaults to ``'openai_imagenet'``.
        threshold (float): Threshold of every category. Defaults to 0.5.
        batch_size (int): Prompts per text-tower call. Defaults to 256.
        cache_size (int): Category sets (or chunks) kept. Defaults to 8.
        chunk_size (int): Plain names embedded and cached together.
            Defaults to 32.
        init_cfg (dict, optional): Initialization config. Defaults to None.
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
        """Hook: a RAM checkpoint has no text-tower keys."""
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
        """Load the tower's ``Pretrained`` ``init_cfg`` strictly (MMEngine's
        loader only warns on another CLIP's tower); whether it did."""
        cfg = getattr(self.text_encoder, 'init_cfg', None)
        if not isinstance(cfg, dict) or cfg.get('type') != 'Pretrained' \
                or not cfg.get('checkpoint'):
            return False
        from mmprompt.utils.checkpoint import load_checkpoint, read_checkpoint
        path, prefix = cfg['checkpoint'], cfg.get('prefix', '')
        sd, meta = read_checkpoint(path)
        sd = {k: v for k, v in sd.items() if k.startswith(prefix)}
        # Loaded under its prefix, so that messages name the file's keys.
        target, name = self.text_encoder, prefix.rstrip('.')
        if name and '.' not in name:
            target = nn.Module()
            target.add_module(name, self.text_encoder)
        else:
            sd = {k[len(prefix):]: v for k, v in sd.items()}
        load_checkpoint(
            target, dict(state_dict=sd, meta=meta),
            name=f"{path} (the open set's text tower, CLIP ViT-B/16's: "
            'RAM was trained on its text space)')
        self.text_encoder._is_init = True
        return True

    @torch.no_grad()
    def encode_text(self, texts: List[str]) -> torch.Tensor:
        """Raw CLIP text features ``(len(texts), C)``, truncated texts.

        Args:
            texts (List[str]): The texts.
        """
        if self.text_encoder is None:
            raise RuntimeError(
                f'{type(self).__name__} has no text_encoder: configure one '
                'or pass encode_text to set_openset')
        device = next(self.text_encoder.parameters()).device
        tokens = self.tokenizer.tokenize(texts, truncate=True)
        return encode_token_ids(self.text_encoder, tokens,
                                batch_size=self.batch_size, device=device,
                                normalize=False)

    def _check_truncation(self, names: Sequence[str],
                          templates: Sequence[str]) -> None:
        """Refuse names whose prompts are the same once truncated."""
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
        """``build()``, kept under ``key``. Single dict operations only:
        threads share the cache and a (deep-copied) module holds no lock."""
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
        """``(K * D, C)`` embeddings, cached when the tower's. Plain names
        go in cached chunks (exact: a category's row depends on it alone).
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
        # One call: encode_text batches, sharing the templates' starts.
        return build_description_label_embed(names, descriptions, templates,
                                             self.encode_text, sys.maxsize)

    def encode(self,
               categories: Optional[CategorySpec] = None,
               templates: Optional[TemplateSpec] = None,
               threshold: Optional[float] = None,
               encode_text: Optional[TextEncoder] = None,
               descriptions: bool = True) -> TagVocabulary:
        """The :class:`TagVocabulary` of these categories.

        Args:
            categories (str | Sequence, optional): Items or a file (see
                :func:`~.label_embedding.load_categories`). Defaults to the
                configured ones.
            templates (str | Sequence[str], optional): Defaults to the
                configured ones.
            threshold (float, optional): Defaults to the configured one.
            encode_text (Callable, optional): Raw text features instead of
                the tower (no caching). Defaults to None.
            descriptions (bool): Whether items may carry descriptions
                (RAM++). Defaults to True.
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
