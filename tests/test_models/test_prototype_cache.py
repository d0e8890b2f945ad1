# Copyright (c) mmprompt contributors. All rights reserved.
"""The prototype cache is an object of its own; the model takes tensors
(prototypes, example images) and decodes no images."""
import ast
import inspect

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from mmprompt.models.clip import clip as clip_module
from mmprompt.models.clip.prototype_cache import (PrototypeCache,
                                                  text_tower_fingerprint)
from mmprompt.utils.checkpoint import tensors_fingerprint
from test_models.test_clip import build_tiny

CATEGORIES = ['cat', 'dog', 'owl']


def test_prototype_cache_roundtrip(tmp_path):
    key = PrototypeCache.key('w', ['cat'], ['a {}'], {}, 0.5)
    assert len(key) == 64
    variants = [
        PrototypeCache.key('w2', ['cat'], ['a {}'], {}, 0.5),
        PrototypeCache.key('w', ['dog'], ['a {}'], {}, 0.5),
        PrototypeCache.key('w', ['cat'], ['the {}'], {}, 0.5),
        PrototypeCache.key('w', ['cat'], ['a {}'], {0: ['x']}, 0.5),
        PrototypeCache.key('w', ['cat'], ['a {}'], {0: ['x']}, 1.0),
    ]
    assert len(set(variants + [key])) == 6
    # The weight only matters when there are descriptions.
    assert key == PrototypeCache.key('w', ['cat'], ['a {}'], {}, 1.0)

    cache = PrototypeCache(str(tmp_path / 'cache'))
    assert cache.load(key) is None
    protos = torch.randn(3, 8)
    path = cache.save(key, protos)
    assert path == cache.path(key) and path.endswith(f'{key}.pth')
    assert [p.name for p in (tmp_path / 'cache').iterdir()] == [f'{key}.pth']
    assert_close(cache.load(key), protos)
    (tmp_path / 'cache' / f'{key}.pth').write_bytes(b'garbage')
    assert cache.load(key) is None


def test_tensors_fingerprint():
    a = [('w', torch.ones(2, 3)), ('b', torch.zeros(3))]
    b = [('w', torch.ones(2, 3)), ('b', torch.tensor([0.0, 0.0, 1e-7]))]
    c = [('w', torch.ones(3, 2)), ('b', torch.zeros(3))]
    fps = {tensors_fingerprint(x) for x in (a, b, c)}
    assert len(fps) == 3
    assert tensors_fingerprint(a) == tensors_fingerprint([
        ('w', torch.ones(2, 3)), ('b', torch.zeros(3))
    ])


def test_cache_builds_once_per_text_tower(tmp_path, monkeypatch):
    """The second request reads the file (no prompt is encoded); other
    text-tower weights are another key; the model predicts the same with
    read prototypes as with built ones."""
    model = build_tiny()
    builds = []
    build = model.build_prototypes

    def spy(*args, **kwargs):
        builds.append(args[0])
        return build(*args, **kwargs)

    monkeypatch.setattr(model, 'build_prototypes', spy)
    cache = PrototypeCache(str(tmp_path))
    descriptions = {1: ('a loyal friend', )}
    first = cache.prototypes(model, CATEGORIES, model.templates,
                             descriptions)
    again = cache.prototypes(model, CATEGORIES, model.templates,
                             descriptions)
    assert len(builds) == 1 and len(list(tmp_path.iterdir())) == 1
    assert torch.equal(first, again)
    images = torch.randn(
        2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    model.set_categories(CATEGORIES, descriptions={'dog': 'a loyal friend'})
    built = [s.pred_score for s in model.predict(images)]
    model.set_categories(
        CATEGORIES, descriptions={'dog': 'a loyal friend'}, prototypes=again)
    read = [s.pred_score for s in model.predict(images)]
    assert_close(read, built, atol=0, rtol=0)
    fingerprint = text_tower_fingerprint(model)
    with torch.no_grad():
        model.text_encoder.ln_final.bias.add_(0.01)
    assert text_tower_fingerprint(model) != fingerprint
    cache.prototypes(model, CATEGORIES, model.templates, descriptions)
    assert len(builds) == 3 and len(list(tmp_path.iterdir())) == 2
    with pytest.raises(ValueError, match='3 categories for 2 prototypes'):
        model.set_categories(CATEGORIES, prototypes=again[:2])


def test_examples_are_tensors_and_need_setting_after_new_weights():
    """set_examples encodes uint8 images through the data preprocessor;
    the model reads no image files; new weights make the examples an
    error until they are set again."""
    tree = ast.parse(inspect.getsource(clip_module))
    imported = [
        node.module for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    ] + [
        alias.name for node in ast.walk(tree)
        if isinstance(node, ast.Import) for alias in node.names
    ]
    assert not [m for m in imported if 'datasets' in (m or '')], imported
    model = build_tiny(categories=CATEGORIES)
    assert not hasattr(model, 'encode_images')
    assert not hasattr(model, 'prototype_cache_dir')
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (4, 3, 32, 32), generator=g,
                           dtype=torch.uint8)
    model.set_examples(list(images), [0, 2, 2, 1])
    with torch.no_grad():
        inputs = model.data_preprocessor(dict(inputs=list(images)))['inputs']
        want = F.normalize(model.extract_image_feat(inputs), dim=-1)
    assert_close(model.example_feats, want, atol=1e-6, rtol=0)
    assert model.example_labels.tolist() == [0, 2, 2, 1]
    # Random pixels through a random tower: features 2e-4 apart in cosine.
    model.cache_alpha, model.cache_beta = 1000.0, 1e5
    # Each example is classified as the category it is filed under.
    preds = model.predict(inputs[[0, 1, 3]])
    assert [int(p.pred_label) for p in preds] == [0, 2, 1]
    with pytest.raises(ValueError, match='4 example images for 3 labels'):
        model.set_examples(images, [0, 1, 2])
    with pytest.raises(ValueError, match=r'in \[0, 3\)'):
        model.set_examples(images, [0, 1, 2, 3])
    model.load_state_dict(build_tiny(seed=1).state_dict())
    with pytest.raises(RuntimeError, match=r'call set_examples\(...\)'):
        model.predict(inputs)
    model.set_examples(None)
    assert model.example_feats is None
    assert len(model.predict(inputs)) == 4
