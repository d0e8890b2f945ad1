# Copyright (c) mmprompt contributors. All rights reserved.
"""Label embeddings from text, for RAM's and RAM++'s open-set tagging.

RAM and RAM++ (``recognize-anything``, Apache-2.0,
``ram/utils/openset_utils.py``) tag unseen categories by replacing their
label embeddings with CLIP ViT-B/16 text features:

- RAM: each category name is cleaned, put in every prompt template, encoded;
  the rows are L2-normalised, averaged and normalised again (one row per
  category);
- RAM++: every LLM description of a category is encoded and normalised, no
  averaging (``D`` rows per category, category-major).

The functions here are pure and batched: all prompts of all categories go
through ``encode_text`` together, in chunks of ``batch_size`` texts, never
one category at a time. ``encode_text`` maps a list of strings to raw text
features ``(N, C)``, e.g. a CLIP text tower after the tokenizer;
:class:`~.vocabulary.CategoryEncoder` wraps them into a
:class:`~.vocabulary.TagVocabulary`.
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

# The key of the template list in RAM's ``openset_templates.json``.
RAM_TEMPLATES_KEY = 'multiple_templates'
# Named fields of RAM's templates besides ``{}``: ``'a'`` or ``'an'``.
RAM_TEMPLATE_FIELDS = ('article', )
# The name of RAM's own 63 templates (:func:`ram_openset_templates`).
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
    """RAM's 63 open-set templates (``multiple_templates`` of
    recognize-anything's ``openset_templates.json``, after ViLD), made from
    OpenAI's 80 ImageNet templates: five "in the scene" prompts, then the
    templates that name no art form, with ``'photo of a {}'`` and
    ``'itap of a {}'`` taking the name's article and ``'a embroidered'``
    read as ``'an embroidered'``.

    The set is RAM's; the order is OpenAI's (the embedding is a mean over
    templates, so only the rounding differs).

    Returns:
        tuple[str]: The templates, named ``'ram_openset'`` in configs.
    """
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
    """Turn a template specification into RAM open-set templates.

    Templates are format strings with one ``{}`` for the category name and
    optionally ``{article}`` (``'a'`` or ``'an'``).

    Args:
        spec (str | Sequence[str]): One of

            - ``'ram_openset'``: RAM's 63 templates
              (:func:`ram_openset_templates`);
            - a JSON file holding a list of templates, or a dict whose
              ``'multiple_templates'`` entry is that list (RAM's
              ``openset_templates.json``: the 63 templates RAM uses);
            - anything :func:`mmprompt.models.clip.prompts.resolve_templates`
              takes (a set name, one template, a file or a list).

    Returns:
        tuple[str]: The templates.
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
    """How a category name reads in RAM's open-set prompts: ``_`` as a
    space, ``/`` as ``' or '``, lower case, no final full stop."""
    return category.replace('_', ' ').replace('/', ' or ').lower().rstrip(
        '.')


def ram_openset_prompts(categories: Sequence[str],
                        templates: Sequence[str]) -> List[str]:
    """All prompts of all categories, category-major, as RAM writes them.

    For a category ``c``: the name is ``c`` with ``'_'`` read as a space and
    ``'/'`` as ``' or '``, lower-cased, trailing dots stripped; the article
    is ``'an'`` if the raw ``c`` starts with a lower-case vowel (so
    ``'Apple'`` gets ``'a'``), else ``'a'``. A prompt that starts with
    ``'a'`` or ``'the'`` is prefixed with ``'This is '``.

    Args:
        categories (Sequence[str]): Category names.
        templates (Sequence[str]): Format strings (``{}``, ``{article}``).

    Returns:
        list[str]: ``len(categories) * len(templates)`` prompts.
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
    """Encode texts in chunks and L2-normalise every row.

    Args:
        texts (Sequence[str]): The texts.
        encode_text (Callable): ``list[str] -> (N, C)`` raw features.
        batch_size (int): Texts per call of ``encode_text``.
            Defaults to 256.

    Returns:
        torch.Tensor: ``(len(texts), C)``, float32, unit rows.
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
    """RAM's open-set label embeddings: a prompt ensemble per category.

    Args:
        categories (Sequence[str]): Category names.
        templates (Sequence[str]): Templates, see :func:`ram_openset_prompts`.
        encode_text (Callable): ``list[str] -> (N, C)`` raw text features.
        batch_size (int): Texts per call of ``encode_text``.
            Defaults to 256.

    Returns:
        torch.Tensor: ``(len(categories), C)``: normalise each prompt's
        feature, average per category, normalise again.
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
        items (Sequence[str | dict] | dict): Plain names, or one-key dicts
            ``{name: [descriptions]}`` (the format of RAM++'s
            ``openimages_rare_200_llm_tag_descriptions.json``); or one dict
            ``{name: [descriptions], ...}``, read as those one-key dicts (a
            string is one description).

    Returns:
        tuple: The names in order, and ``{index: descriptions}`` for the
        items that had descriptions.

    Raises:
        ValueError: On an empty list, a blank or repeated name, a dict with
            other than one key, or an empty description list.
        TypeError: On items that are neither strings nor dicts.
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
    # The zero-shot classifier's rule: names the tokenizer reads alike
    # (case, whitespace) are one category; and so are names that make one
    # prompt here ('red_fox' and 'red fox').
    check_categories(names)
    check_prompt_names(names, _prompt_name,
                       "'_' reads as a space, '/' as 'or'")
    return tuple(names), descriptions


def build_description_label_embed(names: Sequence[str],
                                  descriptions: Mapping[int, Sequence[str]],
                                  templates: Sequence[str],
                                  encode_text: TextEncoder,
                                  batch_size: int = 256) -> torch.Tensor:
    """RAM++'s open-set label embeddings: every description of a category.

    All categories with descriptions must have the same number ``D`` of
    them. A category without descriptions gets RAM's prompt-ensemble
    embedding (:func:`build_openset_label_embed` with ``templates``),
    repeated ``D`` times: RAM++'s softmax over identical rows returns that
    row, so such a category behaves like a RAM open-set category.

    Args:
        names (Sequence[str]): Category names.
        descriptions (Mapping[int, Sequence[str]]): Descriptions of some
            categories, by index (see :func:`split_categories`).
        templates (Sequence[str]): Templates for the categories without
            descriptions.
        encode_text (Callable): ``list[str] -> (N, C)`` raw text features;
            it should truncate over-long texts (RAM++ cuts at 77 tokens).
        batch_size (int): Texts per call of ``encode_text``.
            Defaults to 256.

    Returns:
        torch.Tensor: ``(len(names) * D, C)``, unit rows, category-major
        (row ``k * D + j`` is description ``j`` of category ``k``).

    Raises:
        ValueError: If description counts differ; the error names the
            categories and their counts.
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
    # Back to the categories' order, then category-major rows.
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    embed = torch.cat(parts)[inverse]
    return embed.reshape(len(names) * num_desc, -1)


def load_categories(spec: CategorySpec) -> Sequence[CategoryItem]:
    """Read open-set categories from a file, or pass a list through.

    Args:
        spec (str | Sequence): A list of names and/or ``{name:
            [descriptions]}`` dicts; or the path of a ``.json`` file holding
            such a list (RAM++'s description files) or one object ``{name:
            [descriptions], ...}`` (descriptions, as :func:`split_categories`
            reads a dict), or of a text file with one name per line (blank
            lines skipped). A UTF-8 byte-order mark is ignored.

    Returns:
        Sequence: The items.
    """
    if not isinstance(spec, str):
        return spec
    if not spec.endswith('.json'):
        return read_lines(spec, what='category')
    return read_json(spec, 'category file')
