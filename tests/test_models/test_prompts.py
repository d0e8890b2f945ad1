# Copyright (c) mmprompt contributors. All rights reserved.
import json
import os.path as osp

import pytest

from mmprompt.models.clip import prompts


def test_template_sets_match_openai():
    assert len(prompts.OPENAI_IMAGENET_TEMPLATES) == 80
    assert len(prompts.OPENAI_CIFAR_TEMPLATES) == 18
    assert len(prompts.OPENAI_IMAGENET_SUBSET_TEMPLATES) == 7
    assert prompts.OPENAI_IMAGENET_TEMPLATES[0] == 'a bad photo of a {}.'
    assert prompts.OPENAI_IMAGENET_TEMPLATES[-1] == 'a tattoo of the {}.'
    assert prompts.OPENAI_CIFAR_TEMPLATES[0] == 'a photo of a {}.'
    assert prompts.OPENAI_CIFAR_TEMPLATES[-1] == 'a photo of the big {}.'
    for name, templates in prompts.TEMPLATE_SETS.items():
        assert isinstance(templates, tuple)
        assert prompts.check_templates(templates) == templates, name
        assert len(set(templates)) == len(templates), name


def test_template_sets_equal_open_clip_and_mmpretrain():
    metadata = pytest.importorskip('open_clip.zero_shot_metadata')
    ours = [t.format('x y') for t in prompts.OPENAI_IMAGENET_TEMPLATES]
    assert ours == [f('x y') for f in metadata.OPENAI_IMAGENET_TEMPLATES]
    ours = [t.format('x') for t in prompts.OPENAI_IMAGENET_SUBSET_TEMPLATES]
    assert ours == [f('x') for f in metadata.SIMPLE_IMAGENET_TEMPLATES]
    assert prompts.IMAGENET_CATEGORIES == tuple(metadata.IMAGENET_CLASSNAMES)

    # MMPreTrain 1.2.0 keeps the same sets as lambdas in its CLIP package,
    # read by path: importing the package registers a second CLIPZeroShot.
    import mmpretrain
    from mmpretrain.datasets.categories import IMAGENET_SIMPLE_CATEGORIES
    from testing_utils import load_module
    path = osp.join(
        osp.dirname(mmpretrain.__file__), 'models', 'multimodal', 'clip',
        'utils.py')
    if not osp.isfile(path):
        pytest.skip(f'MMPreTrain has no CLIP prompt file at {path}')
    mmpre = load_module('_mmpretrain_clip_prompts', path)
    pairs = (
        (prompts.OPENAI_IMAGENET_TEMPLATES, mmpre.OPENAI_IMAGENET_PROMPT),
        (prompts.OPENAI_IMAGENET_SUBSET_TEMPLATES,
         mmpre.OPENAI_IMAGENET_PROMPT_SUB),
        (prompts.OPENAI_CIFAR_TEMPLATES, mmpre.OPENAI_CIFAR100_PROMPT))
    for ours, theirs in pairs:
        assert [t.format('x y') for t in ours] == [f('x y') for f in theirs]
    assert prompts.IMAGENET_CATEGORIES == tuple(IMAGENET_SIMPLE_CATEGORIES)


def test_imagenet_categories():
    names = prompts.resolve_categories('imagenet')
    assert len(names) == 1000
    assert names[:3] == ('tench', 'goldfish', 'great white shark')
    assert names[-1] == 'toilet paper'
    # OpenAI's cleaned list keeps two repeated names; the built-in set is
    # taken as published, user lists are checked.
    assert names[657] == names[744] == 'missile'
    assert prompts.resolve_categories('in1k') is names
    # Given back as a list (e.g. by a model), it is still accepted.
    assert prompts.resolve_categories(list(names)) == names


def test_cifar100_categories():
    from mmpretrain.datasets.categories import CIFAR100_CATEGORIES
    names = prompts.resolve_categories('cifar100')
    assert len(names) == 100
    assert names[1] == 'aquarium fish'
    assert names[0] == 'apple' and names[-1] == 'worm'
    assert [n.replace(' ', '_') for n in names] == list(CIFAR100_CATEGORIES)
    assert not any('_' in n for n in names)


def test_resolve_templates_sources(tmp_path):
    assert prompts.resolve_templates('openai_cifar') is (
        prompts.OPENAI_CIFAR_TEMPLATES)
    assert prompts.resolve_templates('simple') == ('a photo of a {}.', )
    assert prompts.resolve_templates(['a {}.',
                                      'the {}']) == ('a {}.', 'the {}')
    path = tmp_path / 'templates.txt'
    path.write_text('a photo of a {}.\n\n  art of the {}.  \n')
    assert prompts.resolve_templates(str(path)) == ('a photo of a {}.',
                                                    'art of the {}.')


@pytest.mark.parametrize('spec, match', [
    ([], 'templates is empty'),
    (['a photo of a cat'], "not a format string with '{}'"),
    (['a {} and a {}'], 'exactly one'),
    (['a {name}'], "not a format string with '{}'"),
    (['a {} {0}'], 'exactly one'),
])
def test_resolve_templates_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        prompts.resolve_templates(spec)


def test_resolve_templates_type_errors():
    with pytest.raises(TypeError, match='must be a string'):
        prompts.resolve_templates(['a {}', 3])
    # A string without braces is a set name or a file.
    with pytest.raises(TypeError, match='openai_cifar, openai_imagenet'):
        prompts.resolve_templates('a photo of a cat.')


def test_resolve_templates_single_template_string(tmp_path, monkeypatch):
    """A string with a brace is one template, checked like any other; set
    names never hold one, so the two cannot be confused."""
    assert prompts.resolve_templates('a photo of a {}.') == (
        'a photo of a {}.', )
    assert not any('{' in name for name in prompts.TEMPLATE_SETS)
    with pytest.raises(ValueError, match='exactly one'):
        prompts.resolve_templates('a {} and a {}')
    with pytest.raises(ValueError, match="not a format string with '{}'"):
        prompts.resolve_templates('a {name}')
    # A set name wins over a file of that name in the working directory.
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'simple').write_text('the {}.\n', encoding='utf-8')
    assert prompts.resolve_templates('simple') == ('a photo of a {}.', )


def test_resolve_categories_list_and_file(tmp_path):
    assert prompts.resolve_categories(['cat', ' dog ']) == ('cat', 'dog')
    path = tmp_path / 'names.txt'
    path.write_text('tabby cat\n\nbeagle\n', encoding='utf-8')
    assert prompts.resolve_categories(str(path)) == ('tabby cat', 'beagle')


def test_resolve_categories_errors(tmp_path):
    with pytest.raises(ValueError, match='empty'):
        prompts.resolve_categories([])
    empty = tmp_path / 'empty.txt'
    empty.write_text('\n\n')
    with pytest.raises(ValueError, match='empty'):
        prompts.resolve_categories(str(empty))
    with pytest.raises(TypeError, match='cifar100, imagenet, in1k'):
        prompts.resolve_categories('imagenet21k')
    with pytest.raises(ValueError, match='blank'):
        prompts.resolve_categories(['cat', '  '])
    with pytest.raises(TypeError, match='not a string'):
        prompts.resolve_categories(['cat', None])
    # Duplicates are named, with their positions, even when they differ in
    # case or spacing only (the tokenizer would give them one prototype).
    with pytest.raises(ValueError) as info:
        prompts.resolve_categories(
            ['cat', 'dog', 'Cat', 'red  fox', 'red fox', 'owl'])
    message = str(info.value)
    assert 'duplicate category names' in message
    assert ("'cat' (#0) and 'Cat' (#2) are the same to the tokenizer (read "
            "as 'cat'); 'red  fox' (#3) and 'red fox' (#4) are the same to "
            "the tokenizer (read as 'red fox'); keep one of each") in message
    assert 'owl' not in message and 'dog' not in message


def test_resolve_descriptions(tmp_path):
    names = ('tabby cat', 'beagle', 'owl')
    got = prompts.resolve_descriptions(
        {
            'owl': 'a bird with big eyes at night',
            'tabby cat': ['a facial photo of a tabby cat', 'a striped cat'],
        }, names)
    assert got == {
        0: ('a facial photo of a tabby cat', 'a striped cat'),
        2: ('a bird with big eyes at night', )
    }
    assert prompts.resolve_descriptions(None, names) == {}
    path = tmp_path / 'descriptions.json'
    path.write_text(json.dumps({'beagle': 'a small hound'}))
    assert prompts.resolve_descriptions(str(path), names) == {
        1: ('a small hound', )
    }
    with pytest.raises(ValueError, match=r"unknown categories: \['dog'\]"):
        prompts.resolve_descriptions({'dog': 'a dog'}, names)
    with pytest.raises(ValueError, match="of 'owl' is blank"):
        prompts.resolve_descriptions({'owl': ['an owl', ' ']}, names)
    with pytest.raises(ValueError,
                       match='missing.json: no such descriptions file'):
        prompts.resolve_descriptions(str(tmp_path / 'missing.json'), names)
