# Copyright (c) mmprompt contributors. All rights reserved.
"""The model's callers read example images and run the prototype cache:
get_model (a config's model.examples / model.prototype_cache_dir, as
tools/deployment/pytorch2onnx.py --examples passes them) and
ZeroShotClassifier(prototype_cache_dir=...)."""
import numpy as np
import pytest
import torch
from PIL import Image
from testing_utils import clip as H

from mmprompt.apis import ZeroShotClassifier, get_model

CIFAR = 'clip/clip_vit-base-p16_zeroshot-cls_cifar100.py'
CATEGORIES = ['cat', 'dog', 'owl']


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    pytest.importorskip('open_clip')
    root = tmp_path_factory.mktemp('zs_inputs')
    rng = np.random.default_rng(0)
    folder = root / 'examples'
    for name in ('dog', 'owl'):
        (folder / name).mkdir(parents=True)
        for i in range(2):
            pixels = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / name / f'{i}.png')
    return dict(
        root=root,
        examples=str(folder),
        config=H.write_tiny_config(str(root / 'tiny.py'), CIFAR),
        checkpoint=H.write_converted_checkpoint(str(root / 'tiny.pth')))


def test_get_model_reads_examples_and_cache(setup, tmp_path):
    cache = tmp_path / 'cache'
    model = get_model(
        setup['config'],
        pretrained=setup['checkpoint'],
        categories=CATEGORIES,
        examples=setup['examples'],
        prototype_cache_dir=str(cache))
    assert model.example_labels.tolist() == [1, 1, 2, 2]
    assert model.example_feats.shape == (4, H.TINY['embed_dim'])
    assert len(list(cache.iterdir())) == 1
    # The cached prototypes are those a build gives (renormalised alike).
    built = model.build_vocabulary(CATEGORIES, model.templates).prototypes
    torch.testing.assert_close(model.text_prototypes, built, atol=0, rtol=0)
    # The config keeps them for the callers; the model has no such argument.
    assert model._config.model.prototype_cache_dir == str(cache)
    with pytest.raises(ValueError, match='need categories'):
        get_model(setup['config'], pretrained=setup['checkpoint'],
                  categories=None, examples=setup['examples'])


def test_classifier_caches_every_category_set(setup, tmp_path, monkeypatch):
    cache = tmp_path / 'cache'
    image = np.random.default_rng(1).integers(0, 255, (40, 40, 3), np.uint8)
    classifier = ZeroShotClassifier(
        setup['config'], pretrained=setup['checkpoint'],
        prototype_cache_dir=str(cache))
    first = classifier(image, categories=CATEGORIES, topk=3)
    classifier(image, categories=['car', 'tree'], topk=2)
    # The sets asked for; not the config's CIFAR-100 names.
    assert len(list(cache.iterdir())) == 2
    again = ZeroShotClassifier(
        setup['config'], pretrained=setup['checkpoint'],
        prototype_cache_dir=str(cache))
    monkeypatch.setattr(again.model, 'build_prototypes', None)  # never built
    second = again(image, categories=CATEGORIES, topk=3,
                   examples=setup['examples'])
    assert again.default_vocabulary.example_feats.shape[0] == 4
    assert second[0]['topk_classes'] and first[0]['topk_classes']
    third = again(image, categories=CATEGORIES, topk=3)
    # Examples are per call.
    assert again.default_vocabulary.example_feats is None
    assert third[0]['topk_classes'] == first[0]['topk_classes']
    np.testing.assert_allclose(
        third[0]['topk_scores'], first[0]['topk_scores'], atol=1e-6)
