# Copyright (c) mmprompt contributors. All rights reserved.
"""Resolving and checking the templates, categories and descriptions of
zero-shot classification (template sets re-exported from ``templates``)."""
import functools
import os.path as osp
import unicodedata
from collections import defaultdict
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from mmprompt.utils.errors import InvalidInputError, UserError
from mmprompt.utils.io import read_json, read_lines
from .templates import (OPENAI_CIFAR_TEMPLATES,
                        OPENAI_IMAGENET_SUBSET_TEMPLATES,
                        OPENAI_IMAGENET_TEMPLATES, SIMPLE_TEMPLATES,
                        TEMPLATE_SETS)
from .tokenizer import pre_tokens

__all__ = [  # noqa: F822 (IMAGENET_CATEGORIES: module __getattr__)
    'IMAGENET_CATEGORIES', 'OPENAI_CIFAR_TEMPLATES',
    'OPENAI_IMAGENET_SUBSET_TEMPLATES', 'OPENAI_IMAGENET_TEMPLATES',
    'SIMPLE_TEMPLATES', 'TEMPLATE_SETS', 'TemplateSpec', 'CategorySpec',
    'builtin_category_sets', 'check_templates', 'resolve_templates',
    'check_categories', 'check_prompt_names', 'resolve_categories',
    'resolve_descriptions'
]

TemplateSpec = Union[str, Sequence[str]]
CategorySpec = Union[str, Sequence[str]]


@functools.lru_cache(maxsize=None)
def _imagenet_categories() -> Tuple[str, ...]:
    """OpenAI's 1000 cleaned ImageNet names (MMPreTrain's
    ``IMAGENET_SIMPLE_CATEGORIES``)."""
    from mmpretrain.datasets.categories import IMAGENET_SIMPLE_CATEGORIES
    return tuple(IMAGENET_SIMPLE_CATEGORIES)


def __getattr__(name: str):
    # IMAGENET_CATEGORIES on first use: MMPreTrain's datasets package is
    # slow to import and most callers never need it.
    if name == 'IMAGENET_CATEGORIES':
        return _imagenet_categories()
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def builtin_category_sets() -> Dict[str, Tuple[str, ...]]:
    """Set name -> category names: ``'imagenet'`` (``'in1k'``), OpenAI's
    names, two of them repeated as in OpenAI's evaluation; ``'cifar100'``,
    MMPreTrain's with ``_`` read as a space."""
    from mmpretrain.datasets.categories import CIFAR100_CATEGORIES
    return {
        'imagenet': _imagenet_categories(),
        'in1k': _imagenet_categories(),
        'cifar100': tuple(n.replace('_', ' ') for n in CIFAR100_CATEGORIES),
    }


def check_templates(templates: Sequence[str],
                    fields: Sequence[str] = ()) -> Tuple[str, ...]:
    """Check that there are templates and each is a string with exactly
    one ``{}`` (``ValueError``, ``TypeError`` otherwise): the one template
    rule, for CLIP's and RAM's open-set templates.

    Args:
        templates (Sequence[str]): Format strings such as
            ``'a photo of a {}.'``.
        fields (Sequence[str]): Named fields allowed besides ``{}``, e.g.
            ``('article', )`` for RAM. Defaults to ().

    Returns:
        tuple[str]: The templates.
    """
    templates = tuple(templates)
    if not templates:
        raise ValueError('templates is empty: give at least one template')
    named = {field: '' for field in fields}
    allowed = ''.join(f' and "{{{f}}}"' for f in fields)
    for template in templates:
        if not isinstance(template, str):
            raise TypeError(
                f'a template must be a string, got {type(template).__name__}'
                f' ({template!r})')
        if '{}' not in template:
            raise ValueError(
                f"template {template!r} is not a format string with '{{}}' "
                'for the category name (it needs exactly one)')
        try:
            filled = template.format('', **named)
        except (IndexError, KeyError, ValueError) as e:
            raise ValueError(
                f'template {template!r} must hold exactly one "{{}}"'
                f'{allowed} and no other replacement field '
                f'({type(e).__name__}: {e})') from None
        if template.count('{}') != 1 or '{' in filled or '}' in filled:
            raise ValueError(
                f'template {template!r} must hold exactly one "{{}}"'
                f'{allowed} and no other braces')
    return templates


def resolve_templates(spec: TemplateSpec) -> Tuple[str, ...]:
    """Turn a template specification into a checked tuple of templates.

    Args:
        spec (str | Sequence[str]): A set name of :data:`TEMPLATE_SETS`,
            else one template (a string with a brace), else a UTF-8 text
            file (one per line, blank lines skipped); or a list of
            templates, checked by :func:`check_templates`.

    Returns:
        tuple[str]: Format strings, each with exactly one ``{}``.
    """
    if isinstance(spec, str):
        if spec in TEMPLATE_SETS:
            return TEMPLATE_SETS[spec]
        if '{' in spec or '}' in spec:
            return check_templates([spec])
        if osp.isfile(spec):
            return check_templates(read_lines(spec))
        raise TypeError(
            'templates must be a set name '
            f'({", ".join(sorted(TEMPLATE_SETS))}), a template with "{{}}" '
            f'for the category name, a text file or a list; got {spec!r}')
    return check_templates(spec)


def check_prompt_names(names: Sequence[str],
                       prompt_name: Callable[[str], str], rule: str) -> None:
    """Refuse (``InvalidInputError``) different names that the tokenizer
    reads alike once ``prompt_name`` rewrites them; equal names are left to
    :func:`check_categories`.

    Args:
        names (Sequence[str]): Category names, checked already.
        prompt_name (Callable): A name as the family's prompts write it.
        rule (str): That rewriting in words, for the message.
    """
    seen = {}
    for i, name in enumerate(names):
        first = seen.setdefault(pre_tokens(prompt_name(name)), i)
        if first != i and names[first] != name:
            raise InvalidInputError(
                f'duplicate category names: {names[first]!r} (#{first}) and '
                f'{name!r} (#{i}) make one prompt ({rule}); keep one of each')


def check_categories(categories: Sequence[str]) -> Tuple[str, ...]:
    """Check a user's category names: non-empty strings, none the same to
    the tokenizer (:func:`~mmprompt.models.clip.tokenizer.pre_tokens`), as
    such names tie and split their probability. OpenAI's ImageNet list is
    accepted as published, with its two repeated names.

    Args:
        categories (Sequence[str]): Category names.

    Returns:
        tuple[str]: The names, stripped of surrounding whitespace.
    """
    if isinstance(categories, str):
        raise TypeError('categories must be a sequence of strings, not a '
                        'string')
    names = []
    for i, name in enumerate(categories):
        if not isinstance(name, str):
            raise TypeError(f'category {i} is not a string: {name!r}')
        if not name.strip():
            raise ValueError(f'category {i} is blank')
        names.append(name.strip())
    if not names:
        raise ValueError('categories is empty: give at least one name')
    if len(names) == 1000 and tuple(names) == _imagenet_categories():
        # OpenAI's published list, as given back by a model or a user.
        return _imagenet_categories()
    positions = defaultdict(list)
    for i, name in enumerate(names):
        positions[pre_tokens(name)].append(i)
    repeated = [(key, idx) for key, idx in positions.items() if len(idx) > 1]
    if repeated:
        shown = '; '.join(_same_names(names, idx, key)
                          for key, idx in repeated)
        raise InvalidInputError(f'duplicate category names: {shown}; keep '
                                'one of each')
    return tuple(names)


def _same_names(names: Sequence[str], idx: Sequence[int],
                key: Tuple[str, ...]) -> str:
    """``"'cat' (#0) and 'Cat' (#2) are the same ..."``; names not in NFC
    are shown escaped, else they would look the same."""
    shown = [
        f'{names[i]!r} (#{i})' if unicodedata.is_normalized('NFC', names[i])
        else f'{ascii(names[i])} (#{i})' for i in idx
    ]
    listed = ', '.join(shown[:-1]) + ' and ' + shown[-1]
    return (f'{listed} are the same to the tokenizer (read as '
            f"{' '.join(key)!r})")


def category_spec(values: Optional[List[str]]) -> Union[None, str, List[str]]:
    """``--categories`` values as the inferencers take them: one file or
    set name stays a string, else a list of names (``UserError`` for a
    missing ``.txt``)."""
    if not values:
        return None
    if len(values) == 1:
        value = values[0]
        if osp.isfile(value) or value in builtin_category_sets():
            return value
        if value.endswith('.txt'):
            raise UserError(f'--categories: no such file {value!r}')
    return list(values)


def resolve_categories(spec: CategorySpec) -> Tuple[str, ...]:
    """Turn a category specification into a tuple of names in label order.

    Args:
        spec (str | Sequence[str]): A set name of
            :func:`builtin_category_sets`, a UTF-8 text file (one name per
            line, blank lines skipped), or a list of names; files and lists
            are checked by :func:`check_categories`.

    Returns:
        tuple[str]: Category names; label ``i`` is name ``i``.
    """
    if isinstance(spec, str):
        builtin = builtin_category_sets()
        if spec in builtin:
            return builtin[spec]
        if osp.isfile(spec):
            return check_categories(read_lines(spec))
        raise TypeError(
            'categories must be a sequence of strings, a set name '
            f'({", ".join(sorted(builtin))}) or a text file with one name '
            f'per line; got {spec!r}')
    return check_categories(spec)


def resolve_descriptions(
        spec: Union[None, str, Dict[str, Union[str, Sequence[str]]]],
        categories: Sequence[str]) -> Dict[int, Tuple[str, ...]]:
    """Map free-text descriptions to the labels of their categories.

    Args:
        spec (str | dict, optional): ``{category name: text or texts}``, or
            a JSON file of it; None means no descriptions.
        categories (Sequence[str]): The category names, in label order.

    Returns:
        dict: Label -> tuple of descriptions (only labels that have some).
    """
    if spec is None:
        return {}
    if isinstance(spec, str):
        spec = read_json(spec, 'descriptions file')
    if not isinstance(spec, dict):
        raise TypeError('descriptions must be a dict {category: text or '
                        f'list of texts}}, got {type(spec).__name__}')
    labels = defaultdict(list)
    for i, name in enumerate(categories):
        labels[name].append(i)
    unknown = [k for k in spec if k not in labels]
    if unknown:
        raise ValueError(f'descriptions given for unknown categories: '
                         f'{unknown}')
    out = {}
    for name, texts in spec.items():
        if not isinstance(texts, (str, list, tuple)):
            raise TypeError(f'the descriptions of {name!r} must be a string '
                            f'or a list of strings, not '
                            f'{type(texts).__name__}')
        texts = (texts, ) if isinstance(texts, str) else tuple(texts)
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f'a description of {name!r} is not a string:'
                                f' {text!r}')
            if not text.strip():
                raise ValueError(f'a description of {name!r} is blank')
        if texts:
            for label in labels[name]:
                out[label] = texts
    return dict(sorted(out.items()))
