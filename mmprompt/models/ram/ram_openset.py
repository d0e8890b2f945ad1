# Copyright (c) mmprompt contributors. All rights reserved.
"""Open-set tagging with RAM and RAM++: any category names.

Unseen categories get label embeddings from CLIP ViT-B/16's text tower, as
in ``recognize-anything`` (Apache-2.0, ``inference_ram_openset.py`` and
``inference_ram_plus_openset.py``); see :mod:`.openset` for how they are
built. The code is written for mmprompt.
"""
import copy
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log

from mmprompt.registry import MODELS, TOKENIZER
from .openset import (CategorySpec, TemplateSpec,
                      build_description_label_embed, build_openset_label_embed,
                      load_categories, resolve_ram_templates, split_categories)
from .ram import RAMNormal, RAMPlus, TagNames

TEXT_ENCODER_PREFIX = 'text_encoder.'
# Category sets whose embeddings are kept.
CACHE_SIZE = 8


def _in_text_encoder(key: str) -> bool:
    """Whether a (possibly prefixed) state-dict key is the text encoder's."""
    return key.startswith(TEXT_ENCODER_PREFIX) or \
        '.' + TEXT_ENCODER_PREFIX in key


@MODELS.register_module()
class RAMOpenset(RAMNormal):
    """RAM tagging a vocabulary of your own.

    :meth:`set_openset` turns category names into label embeddings with the
    CLIP text tower and scores those instead of the closed vocabulary, with
    one threshold for all (RAM uses 0.5). Until then, and after
    :meth:`clear_openset`, the model is :class:`RAMNormal`.

    The embeddings of the last 8 category sets are cached, keyed by the
    categories and templates; new text-encoder weights empty the cache. The
    open-set embeddings are non-persistent buffers, never saved in a
    checkpoint.

    The text encoder is not part of a RAM checkpoint: its weights come from
    its own ``init_cfg``, e.g. ``dict(type='Pretrained', checkpoint=CLIP,
    prefix='text_encoder.')`` with a checkpoint converted by
    ``tools/model_converters/openai_clip_to_mmprompt.py``, and loading a RAM
    checkpoint with ``strict=True`` ignores its missing keys. Typical use::

        model = MODELS.build(cfg.model)
        load_ram_checkpoint(model, 'ram_swin_large_14m_mmprompt.pth')
        model.set_openset(['Crocodilia', 'Digital camera'])

    Args:
        text_encoder (dict, optional): Config of CLIP's text tower, e.g.
            ``dict(type='CLIPTextTransformer', init_cfg=...)``. None if the
            embeddings always come from an ``encode_text`` callable passed
            to :meth:`set_openset`. Defaults to None.
        tokenizer (dict, optional): Config of the tokenizer, built with
            ``TOKENIZER``. Defaults to ``dict(type='CLIPTokenizer')``.
        categories (str | Sequence, optional): The default categories of
            :meth:`set_openset`: a list, or a ``.txt`` (one name a line) or
            ``.json`` file. Defaults to None.
        templates (str | Sequence[str]): Prompt templates, see
            :func:`~.openset.resolve_ram_templates`: OpenAI's 80 ImageNet
            templates by default; RAM's own 63 are the
            ``multiple_templates`` of its ``openset_templates.json``.
            Defaults to ``'openai_imagenet'``.
        openset_threshold (float): Threshold of every open-set category.
            Defaults to 0.5.
        text_batch_size (int): Prompts per text-encoder call.
            Defaults to 256.
        **kwargs: The arguments of :class:`RAM`.
    """

    def __init__(self,
                 text_encoder: Optional[dict] = None,
                 tokenizer: Optional[dict] = None,
                 categories: Optional[CategorySpec] = None,
                 templates: TemplateSpec = 'openai_imagenet',
                 openset_threshold: float = 0.5,
                 text_batch_size: int = 256,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.text_encoder = None
        self.tokenizer = None
        if text_encoder is not None:
            self.text_encoder = MODELS.build(copy.deepcopy(text_encoder))
            self.tokenizer = TOKENIZER.build(
                copy.deepcopy(tokenizer or dict(type='CLIPTokenizer')))
        self.categories = categories
        self.templates = resolve_ram_templates(templates)
        self.openset_threshold = float(openset_threshold)
        self.text_batch_size = text_batch_size
        self.openset_tags: Optional[TagNames] = None
        self.register_buffer(
            'openset_label_embed',
            torch.zeros(0, self.embed_dims),
            persistent=False)
        self.register_buffer(
            'openset_class_threshold', torch.zeros(0), persistent=False)
        self._openset_cache: Dict[tuple, torch.Tensor] = {}
        self.register_load_state_dict_post_hook(self._ignore_text_encoder)
        if self.text_encoder is not None:
            # New text-encoder weights make the cached embeddings stale.
            self.text_encoder.register_load_state_dict_post_hook(
                self._clear_cache)

    @staticmethod
    def _ignore_text_encoder(module: nn.Module, incompatible_keys) -> None:
        """Strict loading of a RAM checkpoint: the text encoder's keys are
        not in it, its weights come from its own ``init_cfg``."""
        missing = incompatible_keys.missing_keys
        for key in [k for k in missing if _in_text_encoder(k)]:
            missing.remove(key)

    def _clear_cache(self, module: nn.Module, incompatible_keys) -> None:
        """Hook: forget the embeddings built with old weights."""
        self._openset_cache.clear()

    def init_weights(self) -> None:
        """Initialise the weights (the text encoder's from its ``init_cfg``)
        and empty the embedding cache."""
        super().init_weights()
        self._openset_cache.clear()

    @property
    def is_openset(self) -> bool:
        """bool: Whether open-set categories are being scored."""
        return self.openset_tags is not None

    @property
    def num_tags(self) -> int:
        return len(self.openset_tags) if self.is_openset else \
            self.num_classes

    def tag_label_embed(self) -> torch.Tensor:
        return self.openset_label_embed if self.is_openset else \
            super().tag_label_embed()

    def tag_thresholds(self) -> torch.Tensor:
        return self.openset_class_threshold if self.is_openset else \
            super().tag_thresholds()

    def deleted_tags(self) -> Tuple[int, ...]:
        # delete_tag_index numbers the closed vocabulary only.
        return () if self.is_openset else super().deleted_tags()

    def tag_names(self) -> Tuple[Optional[TagNames], Optional[TagNames]]:
        return (self.openset_tags, None) if self.is_openset else \
            super().tag_names()

    @torch.no_grad()
    def encode_text(self, texts: List[str]) -> torch.Tensor:
        """Raw CLIP text features of texts, cut at the context length.

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
        return self.text_encoder(tokens.to(device))

    def _build_label_embed(self, names: TagNames,
                           descriptions: Mapping[int, Sequence[str]],
                           templates: Sequence[str],
                           encode_text: Callable) -> torch.Tensor:
        """Label embeddings of the categories, ``(K * D, C)``."""
        if descriptions:
            raise ValueError(
                'descriptions per category need RAM++ (RAMPlusOpenset); '
                f'{type(self).__name__} takes category names only')
        return build_openset_label_embed(names, templates, encode_text,
                                         self.text_batch_size)

    def set_openset(
        self,
        categories: Optional[CategorySpec] = None,
        templates: Optional[TemplateSpec] = None,
        threshold: Optional[float] = None,
        encode_text: Optional[Callable[[List[str]],
                                       torch.Tensor]] = None) -> None:
        """Score these categories from now on.

        Args:
            categories (str | Sequence, optional): Category names (see
                :func:`~.openset.load_categories`). Defaults to the
                ``categories`` of the config.
            templates (str | Sequence[str], optional): Prompt templates.
                Defaults to those of the config.
            threshold (float, optional): Threshold of every category.
                Defaults to ``openset_threshold``.
            encode_text (Callable, optional): ``list[str] -> (N, C)`` raw
                text features, used instead of the text encoder (nothing is
                cached then). Defaults to None.
        """
        categories = self.categories if categories is None else categories
        if categories is None:
            raise ValueError('no categories given and none configured')
        names, descriptions = split_categories(load_categories(categories))
        templates = self.templates if templates is None else \
            resolve_ram_templates(templates)
        if encode_text is not None:
            embed = self._build_label_embed(names, descriptions, templates,
                                            encode_text)
        else:
            key = (names, tuple(sorted(descriptions.items())), templates)
            embed = self._openset_cache.get(key)
            if embed is None:
                print_log(
                    f'Building label embeddings of {len(names)} '
                    'open-set categories',
                    logger='current')
                embed = self._build_label_embed(names, descriptions, templates,
                                                self.encode_text)
                if len(self._openset_cache) >= CACHE_SIZE:  # drop the oldest
                    self._openset_cache.pop(next(iter(self._openset_cache)))
                self._openset_cache[key] = embed
        threshold = self.openset_threshold if threshold is None else \
            float(threshold)
        if not 0 <= threshold <= 1:
            raise ValueError(f'threshold must lie in [0, 1], got {threshold}')
        device = self.label_embed.device
        self.openset_label_embed = embed.detach().to(
            device=device, dtype=self.label_embed.dtype)
        self.openset_class_threshold = torch.full((len(names), ),
                                                  threshold,
                                                  device=device)
        self.openset_tags = names

    def clear_openset(self) -> None:
        """Go back to the closed vocabulary."""
        self.openset_tags = None
        self.openset_label_embed = self.openset_label_embed.new_zeros(
            0, self.embed_dims)
        self.openset_class_threshold = \
            self.openset_class_threshold.new_zeros(0)


@MODELS.register_module()
class RAMPlusOpenset(RAMOpenset, RAMPlus):
    """RAM++ tagging a vocabulary of your own, with LLM descriptions.

    Categories are ``{name: [descriptions]}`` items (the format of RAM++'s
    ``openimages_rare_200_llm_tag_descriptions.json``): every description is
    encoded (cut at 77 tokens) and normalised, and RAM++ mixes them per
    image. All described categories need the same number of descriptions.
    A plain name instead gets RAM's prompt-ensemble embedding (with
    ``templates``), repeated to that number, which RAM++'s mixing returns
    unchanged. See :class:`RAMOpenset` for the rest.

    Args:
        **kwargs: The arguments of :class:`RAMOpenset` and :class:`RAMPlus`.
    """

    def _build_label_embed(self, names: TagNames,
                           descriptions: Mapping[int, Sequence[str]],
                           templates: Sequence[str],
                           encode_text: Callable) -> torch.Tensor:
        return build_description_label_embed(names, descriptions, templates,
                                             encode_text, self.text_batch_size)
