# Copyright (c) mmprompt contributors. All rights reserved.
"""ZeroShotClassifier and demo/classify.py with tiny random-weight CLIPs."""
import dataclasses
import json
import os.path as osp

import numpy as np
import pytest
from PIL import Image
from testing_utils import REPO_ROOT, load_module, side_by_side

from mmprompt.apis import ZeroShotClassifier, model_zoo
from mmprompt.utils.errors import UserError

from testing_utils import clip as H  # noqa: E402
DEMO = load_module('_mmprompt_demo_classify',
                   osp.join(REPO_ROOT, 'demo', 'classify.py'))
MODEL_CFG = '_base_/models/clip_vit-base-p16.py'
CATEGORIES = ['tabby cat', 'beagle', 'red fox', 'owl', 'rocket']


def picture(seed, h=90, w=120):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    freq = 1 + seed % 5
    img = np.stack([
        128 + 100 * np.sin(freq * x / 9 + c * seed) * np.cos(y / (5 + c))
        for c in range(3)
    ], -1) + rng.normal(0, 15, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    pytest.importorskip('open_clip')
    root = tmp_path_factory.mktemp('zsc')
    ckpt = H.write_converted_checkpoint(str(root / 'tiny.pth'), seed=1)
    config = H.write_tiny_config(str(root / 'tiny.py'), MODEL_CFG)
    images = []
    for i in range(6):
        path = root / f'img{i}.png'
        Image.fromarray(picture(i)).save(path)
        images.append(str(path))
    return dict(root=root, ckpt=ckpt, config=config, images=images)


@pytest.fixture(scope='module')
def classifier(files):
    return ZeroShotClassifier(files['config'], pretrained=files['ckpt'])


def test_inputs_paths_arrays_pil(classifier, files):
    path = files['images'][0]
    rgb = np.asarray(Image.open(path).convert('RGB'))
    results = classifier([path, Image.open(path), rgb[..., ::-1].copy()],
                         categories=CATEGORIES,
                         topk=3)
    assert len(results) == 3
    first = results[0]
    assert len(first['topk_classes']) == 3
    assert set(first['topk_classes']) <= set(CATEGORIES)
    assert first['pred_class'] == first['topk_classes'][0]
    assert first['pred_label'] == CATEGORIES.index(first['pred_class'])
    assert first['topk_scores'] == sorted(first['topk_scores'], reverse=True)
    for other in results[1:]:
        assert other['topk_classes'] == first['topk_classes']
        np.testing.assert_allclose(
            other['topk_scores'], first['topk_scores'], atol=1e-6)
    # All categories with topk >= C; the scores are a softmax.
    full = classifier(path, topk=10)[0]
    assert sorted(full['topk_classes']) == sorted(CATEGORIES)
    assert sum(full['topk_scores']) == pytest.approx(1.0, abs=1e-5)
    json.dumps({k: v for k, v in full.items() if k != 'pred_scores'})


def test_pred_scores_is_every_category_as_mmpretrain(classifier, files):
    """``pred_scores`` is MMPreTrain's: one score per category in category
    order; ``pred_*`` the best of it, ``topk_*`` the k best."""
    result = classifier(files['images'][1], categories=CATEGORIES, topk=2)[0]
    scores = result['pred_scores']
    assert isinstance(scores, np.ndarray)
    assert scores.shape == (len(CATEGORIES), )
    assert float(scores.sum()) == pytest.approx(1.0, abs=1e-5)
    order = np.argsort(-scores, kind='stable')
    assert result['pred_label'] == int(order[0])
    assert result['pred_score'] == pytest.approx(float(scores[order[0]]))
    assert result['pred_class'] == CATEGORIES[order[0]]
    assert result['topk_labels'] == order[:2].tolist()
    assert result['topk_classes'] == [CATEGORIES[i] for i in order[:2]]
    np.testing.assert_allclose(result['topk_scores'], scores[order[:2]])


def test_prototypes_rebuilt_only_when_inputs_change(classifier, files,
                                                    monkeypatch):
    model = classifier.model
    calls = []
    build = model.build_prototypes

    def spy(*args):
        calls.append(args[0])
        return build(*args)

    monkeypatch.setattr(model, 'build_prototypes', spy)
    image = files['images'][1]
    classifier(image, categories=CATEGORIES)
    classifier(image, categories=list(CATEGORIES))
    assert len(calls) <= 1
    classifier(image, categories=CATEGORIES[:3])
    classifier(image, categories=CATEGORIES[:3], templates='openai_cifar')
    assert [len(c) for c in calls[-2:]] == [3, 3]
    n = len(calls)
    classifier(image, categories=CATEGORIES[:3], templates='openai_cifar')
    assert len(calls) == n
    classifier(
        image,
        categories=CATEGORIES[:3],
        templates='openai_cifar',
        descriptions={'red fox': 'a small wild dog'})
    assert len(calls) == n + 1


def test_descriptions_and_examples(classifier, files, monkeypatch):
    images = files['images']
    # Each category's example is one of the images: with a strong cache,
    # each image is classified as the category it is filed under.
    examples = {name: [images[i]] for i, name in enumerate(CATEGORIES)}
    monkeypatch.setattr(classifier.model, 'cache_alpha', 1000.0)
    monkeypatch.setattr(classifier.model, 'cache_beta', 1000.0)
    results = classifier(
        images[:5],
        categories=CATEGORIES,
        descriptions={'tabby cat': 'a facial photo of a tabby cat'},
        examples=examples,
        topk=1)
    assert [r['pred_class'] for r in results] == CATEGORIES
    # Mixed: only two categories have examples (PIL and array inputs).
    mixed = {
        'owl': [Image.open(images[3])],
        'rocket': [np.asarray(Image.open(images[4]))[..., ::-1].copy()],
    }
    results = classifier(
        images[3:5], categories=CATEGORIES, examples=mixed, topk=1)
    assert [r['pred_class'] for r in results] == ['owl', 'rocket']
    feats = classifier.default_vocabulary.example_feats
    assert feats.shape == (2, H.TINY['embed_dim'])


def test_builtin_imagenet_categories(classifier, files):
    """The 1000 ImageNet names (two repeated) round-trip through the model
    and the classifier."""
    result = classifier(
        files['images'][0], categories='imagenet', templates='simple',
        topk=3)[0]
    assert len(classifier.categories) == 1000
    again = classifier(files['images'][0], topk=3)[0]
    assert again['topk_classes'] == result['topk_classes']


def test_bad_inputs(classifier, files, tmp_path):
    with pytest.raises(ValueError, match='categories is empty'):
        classifier(files['images'][0], categories=[])
    with pytest.raises(ValueError, match="'owl' \\(#1\\) and 'Owl' \\(#2\\)"):
        classifier(files['images'][0], categories=['cat', 'owl', 'Owl'])
    with pytest.raises(ValueError, match="not a format string with '{}'"):
        classifier(
            files['images'][0],
            categories=CATEGORIES,
            templates=['a photo of a cat'])
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'\xff\xd8 definitely not a jpeg')
    with pytest.raises(ValueError, match='broken.jpg'):
        classifier(
            files['images'][0],
            categories=CATEGORIES,
            examples={'owl': [str(broken)]})
    with pytest.raises(ValueError, match="unknown categories: \\['dog'\\]"):
        classifier(
            files['images'][0],
            categories=CATEGORIES,
            examples={'dog': [files['images'][0]]})
    # A description over 77 tokens is truncated, with a warning.
    long_text = 'a very ' * 50 + 'old owl'
    result = classifier(
        files['images'][0],
        categories=CATEGORIES,
        descriptions={'owl': long_text})
    assert len(result) == 1


def test_named_model_downloads_official_weights(files, tmp_path, monkeypatch):
    data = H.openai_checkpoint_bytes(seed=1)
    monkeypatch.setenv('MMPROMPT_HOME', str(tmp_path / 'home'))
    with H.FileServer({'/w/ViT-B-16.pt': data}) as server:
        zoo = model_zoo.load_zoo()
        monkeypatch.setitem(
            zoo, 'clip_vit-base-p16',
            dataclasses.replace(
                zoo['clip_vit-base-p16'],
                weights=server.url('/w/ViT-B-16.pt'),
                sha256=H.sha256(data),
                config=files['config']))
        named = ZeroShotClassifier('clip_vit-base-p16')
        assert server.requests == ['/w/ViT-B-16.pt']
    local = ZeroShotClassifier(files['config'], pretrained=files['ckpt'])
    image = files['images'][2]
    a = named(image, categories=CATEGORIES, topk=5)[0]
    b = local(image, categories=CATEGORIES, topk=5)[0]
    assert a['topk_classes'] == b['topk_classes']
    np.testing.assert_allclose(a['topk_scores'], b['topk_scores'], atol=1e-6)


def test_demo_classify_cli(files, tmp_path):
    out = tmp_path / 'results.json'
    results = DEMO.main([
        *files['images'][:2], '--model', files['config'], '--checkpoint',
        files['ckpt'], '--categories', *CATEGORIES, '--topk', '2',
        '--examples', f"owl={files['images'][0]}", '--out',
        str(out)
    ])
    assert len(results) == 2
    saved = json.loads(out.read_text())
    assert [r['image'] for r in saved] == files['images'][:2]
    assert all(len(r['topk_classes']) == 2 for r in saved)
    assert DEMO.parse_examples(['a=x.jpg,y.jpg', 'b=z.png', 'a=w.jpg']) == {
        'a': ['x.jpg', 'y.jpg', 'w.jpg'],
        'b': ['z.png']
    }
    assert DEMO.parse_examples(['folder']) == 'folder'
    with pytest.raises(ValueError, match='NAME=IMG'):
        DEMO.parse_examples(['a=x.jpg', 'nofolder'])


def test_demo_classify_skips_an_unreadable_image(files, tmp_path,
                                                 monkeypatch):
    """One unreadable image among three is reported and skipped; the others
    get the answers they get alone. The device is CUDA when there is one."""
    import torch
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'not an image')
    good = files['images'][:2]
    out = tmp_path / 'results.json'
    argv = [
        good[0], str(broken), good[1], '--model', files['config'],
        '--checkpoint', files['ckpt'], '--categories', *CATEGORIES,
        '--topk', '2'
    ]
    devices = []

    def spy(*args, device=None, **kwargs):
        devices.append(device)
        return ZeroShotClassifier(*args, device='cpu', **kwargs)

    import mmprompt.apis
    monkeypatch.setattr(mmprompt.apis, 'ZeroShotClassifier', spy)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    # MMEngine's logger asks for the device id when it is first made.
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    results = DEMO.main(argv + ['--out', str(out)])
    assert devices == ['cuda']
    alone = DEMO.main(argv[:1] + argv[2:])
    assert [r['topk_classes'] for r in results] == \
        [r['topk_classes'] for r in alone]
    np.testing.assert_allclose([r['pred_scores'] for r in results],
                               [r['pred_scores'] for r in alone])
    saved = json.loads(out.read_text())
    assert [r['image'] for r in saved] == [good[0], str(broken), good[1]]
    assert 'topk_classes' not in saved[1]
    assert len(saved[0]['pred_scores']) == len(CATEGORIES)
    assert str(broken) in saved[1]['error']
    with pytest.raises(UserError, match='none of the 1 images can be read'):
        DEMO.main([str(broken)] + argv[3:])


def test_threads_with_different_categories_get_their_own_answers(files):
    """One classifier, two threads, 4 names in one and 5 in the other, 20
    rounds each at once: every answer equals the one-at-a-time answer.
    With the categories stored on the model (before vocabularies were
    values) the threads' images were scored against each other's sets."""
    classifier = ZeroShotClassifier(files['config'], pretrained=files['ckpt'])
    sets = [CATEGORIES[:4], ['zebra', 'kayak', 'violin', 'tulip', 'moth']]
    images = files['images'][:2]
    alone = [classifier(images, categories=names, topk=5) for names in sets]
    got = side_by_side(
        lambda names: classifier(images, categories=names, topk=5), sets)
    for i in (0, 1):
        assert len(got[i]) == 20
        for out in got[i]:
            for result, want in zip(out, alone[i]):
                assert result['topk_classes'] == want['topk_classes']
                np.testing.assert_allclose(
                    result['topk_scores'], want['topk_scores'], atol=1e-6)
