# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/test.py on tagging benchmarks with a planted answer.

The two reference images, each saved twice, are tagged by the tiny RAM
checkpoint (converted by our converter CLI). Their tags are known from the
reference (``ram_tiny_expected.pth``), so annotations equal to them must
score exactly 100, and annotations with planted errors exactly the values
worked out by hand below. The open-set case runs through
``PrepareOpensetHook``.
"""
import json
import os.path as osp
import shutil
from typing import Optional

import pytest
import torch
from testing_utils import REPO_ROOT, load_module

from mmprompt.evaluation import tagging_metrics

from testing_utils import ram as H  # noqa: E402
TOOL = load_module('_mmprompt_tools_test',
                   osp.join(REPO_ROOT, 'tools', 'test.py'))
COMMON_CFG = 'ram/ram_swin-large-p4-w12_384px_openimages-common.py'
PLUS_COMMON_CFG = 'ram/ram-plus_swin-large-p4-w12_384px_openimages-common.py'
OPENSET_CFG = 'ram/ram_swin-large-p4-w12_384px_openset_openimages-rare.py'
# Samples a, c are image 0; b, d image 1 (same scores within a pair).
SAMPLES = (('a', 0), ('b', 1), ('c', 0), ('d', 1))
# The benchmark: 12 of the tiny model's 20 tags, in another order. 'apple'
# and 'car' are never selected; tags outside it are ignored.
CLASSES = ('woodpecker', 'currency', '3D glasses', 'apple', 'selfie', 'nebula',
           'halloween', 'stool', 'pet', 'car', '3D CG rendering', 'mouse')
KEYS = ('mAP', 'CP', 'CR', 'CF1', 'OP', 'OR', 'OF1')


@pytest.fixture(scope='module')
def bench(ram_vectors_dir, tmp_path_factory):
    """Images, the converted checkpoint and the model's tag list."""
    root = tmp_path_factory.mktemp('tagging_eval')
    (root / 'imgs').mkdir()
    for name, src in SAMPLES:
        shutil.copy(
            osp.join(ram_vectors_dir, 'images', H.IMAGES[src]),
            root / 'imgs' / f'{name}.png')
    meta = H.expected(ram_vectors_dir)
    tags = meta['tags_en']
    H.write_lines(str(root / 'classes.txt'), CLASSES)
    H.write_lines(str(root / 'model_tags.txt'), tags)
    image_tags = [{tags[i]
                   for i in row.nonzero()[:, 0].tolist()}
                  for row in meta['targets']]
    return dict(
        root=root,
        ckpt=H.convert_tiny(ram_vectors_dir, str(root)),
        tags=tags,
        image_tags=image_tags,
        probs=meta['probs'])


def annotate(path, tags_per_sample) -> str:
    """RAM's annotation format: ``name,tag,tag`` (no file extension)."""
    lines = [
        ','.join([name, *sorted(tags)])
        for (name, _), tags in zip(SAMPLES, tags_per_sample)
    ]
    return H.write_lines(str(path), lines)


def dataset_text(root, ann_file: str, **overrides) -> str:
    dataset = dict(
        data_root=str(root),
        ann_file=ann_file,
        data_prefix='imgs',
        img_suffix='.png',
        classes='classes.txt',
        model_tag_list='model_tags.txt')
    dataset.update(overrides)
    return (f'test_dataloader = dict(batch_size=2, num_workers=0, '
            f'dataset={dataset!r})\n')


def run_test(bench,
             name: str,
             base: str,
             num_classes: int,
             ann_file: str,
             dataset: Optional[dict] = None,
             extra: str = '',
             **model) -> dict:
    root = bench['root']
    config = H.write_tiny_config(
        str(root / f'{name}.py'), base, num_classes,
        dataset_text(root, ann_file, **(dataset or {})) + extra, **model)
    out = root / f'{name}.json'
    metrics = TOOL.main([
        config, bench['ckpt'], '--out',
        str(out), '--work-dir',
        str(root / 'work'), '--no-progress'
    ])
    with open(out) as f:
        written = json.load(f)
    assert written['num_samples'] == 4
    assert written['metrics'] == metrics
    return {key: written['metrics'][f'tagging/{key}'] for key in KEYS}


def test_planted_perfect_annotations(bench):
    truth = [bench['image_tags'][src] & set(CLASSES) for _, src in SAMPLES]
    annotate(bench['root'] / 'perfect.txt', truth)
    got = run_test(bench, 'perfect', COMMON_CFG, 20, 'perfect.txt')
    assert got == dict.fromkeys(KEYS, 100.0)


def test_planted_errors(bench):
    """Image 0 (a, c) is annotated without 'pet' (two false positives) and
    with 'apple' (two misses, never selected); image 1 (b, d) with 'mouse'
    (two misses). Per class over the 11 present ones (not 'car'): 'pet' has
    P 1/2, R 1; 'mouse' P 1, R 1/2; 'apple' P 0, R 0; the other 8 are
    perfect. Selected 32 tags, 30 right, 34 true tags. AP of 'pet' (its
    negatives outscore its positives) is (1/3 + 2/4) / 2; the rest 1."""
    img0, img1 = (bench['image_tags'][i] & set(CLASSES) for i in (0, 1))
    assert len(img0) == 10 and len(img1) == 6 and 'pet' in img0 & img1
    wrong0 = (img0 - {'pet'}) | {'apple'}
    wrong1 = img1 | {'mouse'}
    annotate(bench['root'] / 'errors.txt', [wrong0, wrong1, wrong0, wrong1])
    got = run_test(bench, 'errors', COMMON_CFG, 20, 'errors.txt')
    class_mean = 100 * 9.5 / 11
    expected = dict(
        mAP=100 * (10 + 5 / 12) / 11,
        CP=class_mean,
        CR=class_mean,
        CF1=class_mean,
        OP=100 * 30 / 32,
        OR=100 * 30 / 34,
        OF1=100 * 60 / 66)
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-6)
    # The same from plain set counting, as a cross-check of the formulas.
    preds = [bench['image_tags'][src] & set(CLASSES) for _, src in SAMPLES]
    truth = [wrong0, wrong1, wrong0, wrong1]
    tp = sum(len(p & t) for p, t in zip(preds, truth))
    assert tp / sum(map(len, preds)) * 100 == pytest.approx(got['OP'])
    assert tp / sum(map(len, truth)) * 100 == pytest.approx(got['OR'])


def test_ram_plus_planted_perfect(bench, ram_vectors_dir, tmp_path):
    meta = H.expected(ram_vectors_dir, 'ram_plus')
    tags = meta['tags_en']
    plus = dict(
        bench, ckpt=H.convert_tiny(ram_vectors_dir, str(tmp_path), 'ram_plus'))
    H.write_lines(str(bench['root'] / 'plus_tags.txt'), tags)
    H.write_lines(str(bench['root'] / 'plus_classes.txt'), tags[::-1])
    truth = [{tags[i]
              for i in meta['targets'][src].nonzero()[:, 0].tolist()}
             for _, src in SAMPLES]
    assert all(truth) and truth[0] != truth[1]
    annotate(bench['root'] / 'plus.txt', truth)
    dataset = dict(classes='plus_classes.txt', model_tag_list='plus_tags.txt')
    got = run_test(plus, 'plus', PLUS_COMMON_CFG, 8, 'plus.txt', dataset)
    assert got == dict.fromkeys(KEYS, 100.0)


def open_set_targets(bench, categories, text_ckpt):
    """The open-set tags of the two images, through the API."""
    from mmprompt.apis import ImageTagger
    config = H.write_tiny_config(
        str(bench['root'] / 'openset_api.py'),
        'ram/ram_swin-large-p4-w12_384px_openset.py',
        20,
        text_encoder=H.tiny_text_encoder(text_ckpt),
        categories=list(categories))
    tagger = ImageTagger(config, pretrained=bench['ckpt'])
    samples = tagger(
        [str(bench['root'] / 'imgs' / f'{name}.png') for name in 'ab'],
        batch_size=2,
        return_datasamples=True)
    scores = torch.stack([s.pred_score for s in samples])
    # Far enough from the 0.5 threshold for the pipelines' 1e-6 to matter.
    assert (scores - 0.5).abs().min() > 1e-4
    return [{categories[i] for i in s.pred_label.tolist()} for s in samples]


def test_openset_through_prepare_hook(bench, ram_vectors_dir):
    with open(osp.join(ram_vectors_dir, 'ram_tiny_openset.json')) as f:
        categories = json.load(f)['categories']
    root = bench['root']
    text_ckpt = H.save_text_encoder(str(root / 'text.pth'))
    image_tags = open_set_targets(bench, categories, text_ckpt)
    assert all(image_tags) and image_tags[0] != image_tags[1]
    H.write_lines(str(root / 'openset_classes.txt'), categories)
    truth = [image_tags[src] for _, src in SAMPLES]
    annotate(root / 'openset.txt', truth)
    # The leaf config's hook embeds the model's categories after loading.
    dataset = dict(model_tag_list=None, classes='openset_classes.txt')
    model = dict(
        text_encoder=H.tiny_text_encoder(text_ckpt),
        categories=str(root / 'openset_classes.txt'),
        templates='openai_imagenet')
    got = run_test(bench, 'openset', OPENSET_CFG, 20, 'openset.txt', dataset,
                   **model)
    assert got == dict.fromkeys(KEYS, 100.0)
    # Without the hook the model scores its 20 closed tags: a clear error.
    with pytest.raises(
            ValueError, match='scores 20 tags but the dataset '
            'has 8 classes'):
        run_test(bench, 'no_hook', OPENSET_CFG, 20, 'openset.txt', dataset,
                 'custom_hooks = []\n', **model)


def test_tagging_metrics_by_hand():
    """Three images, three classes; class 2 is never true."""
    scores = torch.tensor([[0.9, 0.2, 0.8], [0.4, 0.7, 0.1], [0.6, 0.3, 0.2]])
    selected = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0]]).bool()
    target = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0]]).bool()
    present = tagging_metrics(scores, selected, target)
    # Class 0: tp 1 of 2 selected, 2 true; class 1: tp 2 of 2 and 2; class
    # 2 (absent): selected once. AP0: 0.9(+) 0.6(-) 0.4(+) -> (1 + 2/3) / 2;
    # AP1: 0.7(+) 0.3(+) 0.2(-) -> 1.
    assert present == pytest.approx(
        dict(
            mAP=100 * (5 / 6 + 1) / 2,
            CP=75.0,
            CR=75.0,
            CF1=75.0,
            OP=100 * 3 / 5,
            OR=100 * 3 / 4,
            OF1=100 * 2 * (3 / 5) * (3 / 4) / (3 / 5 + 3 / 4)),
        rel=1e-6)
    # Over all classes, the absent one counts as 0 (AP 0 in MMPreTrain).
    every = tagging_metrics(scores, selected, target, average_over='all')
    assert every['CP'] == pytest.approx(50.0)
    assert every['CR'] == pytest.approx(50.0)
    assert every['mAP'] == pytest.approx(100 * (5 / 6 + 1) / 3, rel=1e-6)
    assert every['OP'] == present['OP']
    with pytest.raises(ValueError, match='average_over'):
        tagging_metrics(scores, selected, target, average_over='some')
    with pytest.raises(ValueError, match='no class has a true tag'):
        tagging_metrics(scores, selected, torch.zeros_like(target))
