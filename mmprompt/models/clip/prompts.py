# Copyright (c) mmprompt contributors. All rights reserved.
"""Resolving and checking template sets and category sets for zero-shot
classification.

The data (OpenAI's template sets and ImageNet class names) lives in
:mod:`mmprompt.models.clip.zero_shot_metadata`; its names are re-exported
here so that ``from mmprompt.models.clip.prompts import TEMPLATE_SETS`` keeps
working.

:func:`resolve_templates` and :func:`resolve_categories` turn what a user
gives (a set name, a list or a text file) into a checked tuple of strings.
"""
import os.path as osp
from collections import defaultdict
from typing import Dict, Sequence, Tuple, Union

from mmprompt.utils.io import read_json, read_lines
from .zero_shot_metadata import (IMAGENET_CATEGORIES, OPENAI_CIFAR_TEMPLATES,
                                 OPENAI_IMAGENET_SUBSET_TEMPLATES,
                                 OPENAI_IMAGENET_TEMPLATES, SIMPLE_TEMPLATES,
                                 TEMPLATE_SETS)

__all__ = [
    'IMAGENET_CATEGORIES', 'OPENAI_CIFAR_TEMPLATES',
    'OPENAI_IMAGENET_SUBSET_TEMPLATES', 'OPENAI_IMAGENET_TEMPLATES',
    'SIMPLE_TEMPLATES', 'TEMPLATE_SETS', 'TemplateSpec', 'CategorySpec',
    'builtin_category_sets', 'check_templates', 'resolve_templates',
    'check_categories', 'resolve_categories', 'resolve_descriptions'
]

TemplateSpec = Union[str, Sequence[str]]
CategorySpec = Union[str, Sequence[str]]


def _cifar100_categories() -> Tuple[str, ...]:
    """CIFAR-100's classes in MMPreTrain's (label) order, ``_`` read as a
    space (``'aquarium_fish'`` -> ``'aquarium fish'``)."""
    from mmpretrain.datasets.categories import CIFAR100_CATEGORIES
    return tuple(name.replace('_', ' ') for name in CIFAR100_CATEGORIES)


def builtin_category_sets() -> Dict[str, Tuple[str, ...]]:
    """The built-in category sets by name.

    ``'imagenet'`` (alias ``'in1k'``) holds OpenAI's 1000 cleaned ImageNet
    names in label order; two pairs of classes share a name there
    (``'missile'``, ``'sunglasses'``), as in OpenAI's evaluation.
    ``'cifar100'`` holds CIFAR-100's names in MMPreTrain's label order.

    Returns:
        dict: Set name -> tuple of category names.
    """
    return {
        'imagenet': IMAGENET_CATEGORIES,
        'in1k': IMAGENET_CATEGORIES,
        'cifar100': _cifar100_categories(),
    }


def check_templates(templates: Sequence[str],
                    fields: Sequence[str] = ()) -> Tuple[str, ...]:
    """Check that every template is a string with exactly one ``{}``.

    The one template rule, for CLIP's templates and RAM's open-set ones.

    Args:
        templates (Sequence[str]): Format strings such as
            ``'a photo of a {}.'``.
        fields (Sequence[str]): Named fields a template may use besides
            ``{}``, e.g. ``('article', )`` for RAM's ``'{article}'``.
            Defaults to ().

    Returns:
        tuple[str]: The templates.

    Raises:
        ValueError: If there is no template, or one has no ``{}``, several,
            or other replacement fields.
        TypeError: If a template is not a string.
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

    This is the one statement of the template rule; the models, the
    inferencers and the tools refer to it. A string is read, in this order,
    as a built-in set name, then (if it holds a brace; set names never do)
    as one template, then as a text file; every template is checked by
    :func:`check_templates`.

    Args:
        spec (str | Sequence[str]): One of

            - a set name: ``'openai_imagenet'`` (OpenAI's 80 ImageNet
              templates), ``'openai_imagenet_subset'`` (7 of them),
              ``'openai_cifar'`` (OpenAI's 18 CIFAR templates) or
              ``'simple'`` (``'a photo of a {}.'``);
            - one template: a string with ``{}``, ``'a photo of a {}.'``;
            - a path to a UTF-8 text file, one template per line (blank
              lines are skipped);
            - a list or tuple of templates.

    Returns:
        tuple[str]: Format strings, each with exactly one ``{}``.

    Raises:
        TypeError: For a string that is neither a set name, a template nor
            a file.
        ValueError: For an empty set or a template without exactly one
            ``{}``.
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


def _name_key(name: str) -> str:
    """What the tokenizer sees of a name: lower case, whitespace folded."""
    return ' '.join(name.lower().split())


def check_categories(categories: Sequence[str]) -> Tuple[str, ...]:
    """Check a user's category names: non-empty, strings, no duplicates.

    Names are compared as the tokenizer reads them (case and runs of
    whitespace ignored), since such names would get the same prototype.
    OpenAI's ImageNet list itself is accepted as published, with its two
    repeated names.

    Args:
        categories (Sequence[str]): Category names.

    Returns:
        tuple[str]: The names, stripped of surrounding whitespace.

    Raises:
        ValueError: If the list is empty, a name is blank, or names repeat
            (the error names them and their positions).
        TypeError: If a name is not a string.
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
    if tuple(names) == IMAGENET_CATEGORIES:
        # OpenAI's published list, as given back by a model or a user.
        return IMAGENET_CATEGORIES
    positions = defaultdict(list)
    for i, name in enumerate(names):
        positions[_name_key(name)].append(i)
    repeated = [idx for idx in positions.values() if len(idx) > 1]
    if repeated:
        shown = '; '.join(', '.join(f'{names[i]!r} (#{i})' for i in idx)
                          for idx in repeated)
        raise ValueError(f'duplicate category names: {shown}')
    return tuple(names)


def resolve_categories(spec: CategorySpec) -> Tuple[str, ...]:
    """Turn a category specification into a tuple of names in label order.

    Args:
        spec (str | Sequence[str]): One of

            - a built-in set name: ``'cifar100'`` or ``'imagenet'``
              (``'in1k'``), see :func:`builtin_category_sets`;
            - a path to a UTF-8 text file, one name per line (blank lines
              are skipped);
            - a list or tuple of names.

    Returns:
        tuple[str]: Category names; label ``i`` is name ``i``.

    Raises:
        TypeError: For a string that is neither a set name nor a file.
        ValueError: For an empty list or duplicate names (user lists and
            files only; the built-in ImageNet set keeps OpenAI's two
            repeated names).
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
        spec (str | dict, optional): ``{category name: description or list
            of descriptions}`` (e.g. ``{'tabby cat': 'a facial photo of a
            tabby cat'}``), or the path of a JSON file holding such a dict.
            Not every category needs one. None means no descriptions.
        categories (Sequence[str]): The category names, in label order.

    Returns:
        dict: Label -> tuple of descriptions (only labels that have some).

    Raises:
        ValueError: If a key names no category, or a description is blank.
        TypeError: If a description is not a string.
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
