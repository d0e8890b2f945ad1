# Copyright (c) mmprompt contributors. All rights reserved.
"""Open-set label embeddings of RAM and RAM++ from CLIP text features
(``recognize-anything``'s ``ram/utils/openset_utils.py``, Apache-2.0): pure,
batched functions of an ``encode_text`` callable, ``list[str] -> (N, C)``.
"""
from typing import Callable, Dict, List, Mapping, Sequence, Tuple, Union

import torch

from mmprompt.models.clip.prompts import (check_categories,
                                          check_prompt_names, check_templates,
                                          resolve_templates)
from mmprompt.utils.io import read_json, read_lines

TextEncoder = Callable[[List[str]], torch.Tensor]
# An open-set category: a name, or {name: [descriptions]} (RAM++).
CategoryItem = Union[str, Mapping[str, Sequence[str]]]
CategorySpec = Union[str, Sequence[CategoryItem]]
TemplateSpec = Union[str, Sequence[str]]

RAM_TEMPLATES_KEY = 'multiple_templates'  # in openset_templates.json
RAM_TEMPLATE_FIELDS = ('article', )  # besides {}: 'a' or 'an'
RAM_TEMPLATE_SET = 'ram_openset'
# What RAM's templates add to OpenAI's ImageNet ones, and what they leave out.
_SCENE_TEMPLATES = ('There is {article} {} in the scene.',
                    'There is the {} in the scene.',
                    'a photo of {article} {} in the scene.',
                    'a photo of the {} in the scene.',
                    'a photo of one {} in the scene.')
_ART_FORMS = ('sculpture', 'rendering', 'rendition', 'graffiti', 'tattoo',
              'drawing', 'doodle', 'sketch', 'origami', 'video game',
              'art of')


def ram_openset_templates() -> Tuple[str, ...]:
    """RAM's 63 open-set templates (``'ram_openset'``) made from OpenAI's
    80 ImageNet ones; RAM's set in OpenAI's order (the embedding is a mean
    over templates, so only the rounding differs)."""
    kept = []
    for template in resolve_templates('openai_imagenet'):
        if any(art in template for art in _ART_FORMS):
            continue
        for old, new in (('a embroidered', 'an embroidered'),
                         ('photo of a {}', 'photo of {article} {}'),
                         ('itap of a {}', 'itap of {article} {}')):
            template = template.replace(old, new)
        kept.append(template)
    return _SCENE_TEMPLATES + tuple(kept)


def resolve_ram_templates(spec: TemplateSpec) -> Tuple[str, ...]:
    """RAM open-set templates (``{}`` and optionally ``{article}``).

    Args:
        spec (str | Sequence[str]): ``'ram_openset'``, a JSON list or
            ``{'multiple_templates': [...]}`` file, or what
            :func:`mmprompt.models.clip.prompts.resolve_templates` takes.
    """
    if spec == RAM_TEMPLATE_SET:
        return ram_openset_templates()
    if isinstance(spec, str) and spec.endswith('.json'):
        data = read_json(spec, 'template file')
        if isinstance(data, dict):
            if RAM_TEMPLATES_KEY not in data:
                raise ValueError(f'{spec}: a dict of templates needs a '
                                 f'{RAM_TEMPLATES_KEY!r} list')
            data = data[RAM_TEMPLATES_KEY]
        return check_templates(data, fields=RAM_TEMPLATE_FIELDS)
    if isinstance(spec, str):
        return resolve_templates(spec)
    return check_templates(spec, fields=RAM_TEMPLATE_FIELDS)


def _prompt_name(category: str) -> str:
    """A category name as RAM's open-set prompts read it."""
    return category.replace('_', ' ').replace('/', ' or ').lower().rstrip(
        '.')


def ram_openset_prompts(categories: Sequence[str],
                        templates: Sequence[str]) -> List[str]:
    """All prompts of all categories, category-major, as RAM writes them
    (RAM's article rule: ``'Apple'`` gets ``'a'``).

    Args:
        categories (Sequence[str]): Category names.
        templates (Sequence[str]): Format strings (``{}``, ``{article}``).
    """
    prompts = []
    for category in categories:
        name = _prompt_name(category)
        article = 'an' if category and category[0] in 'aeiou' else 'a'
        for template in templates:
            text = template.format(name, article=article)
            if text.startswith('a') or text.startswith('the'):
                text = 'This is ' + text
            prompts.append(text)
    return prompts


def encode_texts(texts: Sequence[str],
                 encode_text: TextEncoder,
                 batch_size: int = 256) -> torch.Tensor:
    """Encode texts in chunks: ``(len(texts), C)``, float32, unit rows.

    Args:
        texts (Sequence[str]): The texts.
        encode_text (Callable): ``list[str] -> (N, C)`` raw features.
        batch_size (int): Texts per call. Defaults to 256.
    """
    texts = list(texts)
    feats = torch.cat([
        encode_text(texts[i:i + batch_size]).float()
        for i in range(0, len(texts), batch_size)
    ])
    if feats.size(0) != len(texts):
        raise ValueError(f'encode_text returned {feats.size(0)} rows for '
                         f'{len(texts)} texts')
    return feats / feats.norm(dim=-1, keepdim=True)


def build_openset_label_embed(categories: Sequence[str],
                              templates: Sequence[str],
                              encode_text: TextEncoder,
                              batch_size: int = 256) -> torch.Tensor:
    """RAM's open-set label embeddings ``(len(categories), C)``: the
    normalised mean of each category's unit prompt features.

    Args:
        categories (Sequence[str]): Category names.
        templates (Sequence[str]): Templates, see :func:`ram_openset_prompts`.
        encode_text (Callable): ``list[str] -> (N, C)`` raw text features.
        batch_size (int): Texts per call. Defaults to 256.
    """
    prompts = ram_openset_prompts(categories, templates)
    feats = encode_texts(prompts, encode_text, batch_size)
    feats = feats.view(len(categories), len(templates), -1).mean(dim=1)
    return feats / feats.norm(dim=-1, keepdim=True)


def split_categories(
    items: Union[Sequence[CategoryItem], Mapping[str, Sequence[str]]]
) -> Tuple[Tuple[str, ...], Dict[int, Tuple[str, ...]]]:
    """Split open-set items into names and per-category descriptions.

    Args:
        items (Sequence[str | dict] | dict): Plain names and/or one-key
            dicts ``{name: [descriptions]}`` (RAM++'s format), or one dict
            of them all.

    Returns:
        tuple: The names in order, and ``{index: descriptions}``.
    """
    if isinstance(items, Mapping):
        items = [{name: texts} for name, texts in items.items()]
    if isinstance(items, str) or not len(items):
        raise ValueError('categories must be a non-empty list')
    names, descriptions = [], {}
    for i, item in enumerate(items):
        if isinstance(item, Mapping):
            if len(item) != 1:
                raise ValueError(f'category {i} must be one {{name: '
                                 f'[descriptions]}} pair, got {len(item)}')
            (name, texts), = item.items()
            texts = (texts, ) if isinstance(texts, str) else tuple(texts)
            if not texts or not all(isinstance(t, str) for t in texts):
                raise ValueError(f'category {name!r} needs a non-empty list '
                                 'of description strings')
            descriptions[i] = texts
        elif isinstance(item, str):
            name = item
        else:
            raise TypeError(f'category {i} is neither a name nor a '
                            f'{{name: [descriptions]}} dict: {item!r}')
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f'category {i} has a blank name')
        names.append(name)
    check_categories(names)
    check_prompt_names(names, _prompt_name,
                       "'_' reads as a space, '/' as 'or'")
    return tuple(names), descriptions


def build_description_label_embed(names: Sequence[str],
                                  descriptions: Mapping[int, Sequence[str]],
                                  templates: Sequence[str],
                                  encode_text: TextEncoder,
                                  batch_size: int = 256) -> torch.Tensor:
    """RAM++'s open-set label embeddings ``(len(names) * D, C)``, unit rows,
    category-major: ``D`` descriptions per described category; a plain name
    gets RAM's row repeated ``D`` times (RAM++'s softmax returns it as is).

    Args:
        names (Sequence[str]): Category names.
        descriptions (Mapping[int, Sequence[str]]): Descriptions of some
            categories, by index (see :func:`split_categories`).
        templates (Sequence[str]): Templates of the plain names.
        encode_text (Callable): ``list[str] -> (N, C)`` raw text features,
            truncating over-long texts.
        batch_size (int): Texts per call. Defaults to 256.
    """
    counts = {len(texts) for texts in descriptions.values()}
    if len(counts) > 1:
        shown = ', '.join(f'{names[i]!r}: {len(texts)}'
                          for i, texts in sorted(descriptions.items()))
        raise ValueError('every category needs the same number of '
                         f'descriptions; got {shown}')
    num_desc = counts.pop() if counts else 1
    described = sorted(descriptions)
    plain = [i for i in range(len(names)) if i not in descriptions]
    parts, order = [], []
    if described:
        texts = [t for i in described for t in descriptions[i]]
        feats = encode_texts(texts, encode_text, batch_size)
        parts.append(feats.view(len(described), num_desc, -1))
        order += described
    if plain:
        feats = build_openset_label_embed([names[i] for i in plain], templates,
                                          encode_text, batch_size)
        parts.append(feats.unsqueeze(1).expand(-1, num_desc, -1))
        order += plain
    embed = torch.cat(parts)[torch.tensor(order).argsort()]
    return embed.reshape(len(names) * num_desc, -1)


def load_categories(spec: CategorySpec) -> Sequence[CategoryItem]:
    """Open-set items (see :func:`split_categories`) read from a file, or
    passed through.

    Args:
        spec (str | Sequence): Items, a ``.json`` file of them, or a text
            file of one name a line.
    """
    if not isinstance(spec, str):
        return spec
    if not spec.endswith('.json'):
        return read_lines(spec, what='category')
    return read_json(spec, 'category file')
