# Copyright (c) mmprompt contributors. All rights reserved.
"""One table (issue #19): a category list, a description file, example
images and a learned-prompt file each give the same scores through every
entry point as through :class:`~mmprompt.apis.ZeroShotClassifier`.

Rows are input kind x entry point: ``tools/test.py --dump``,
``tools/infer.py classify``, the demo's ``MMPromptBackend`` and
``tools/deployment/pytorch2onnx.py`` run by onnxruntime, on the same four
images (one per class of a custom folder) and a tiny random-weight CLIP.
Each row compares the full score vector, in category order, with the
inferencer's ``pred_scores``.
"""
import json
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from test_apis.test_learned_classifier import (NAMES, write_coop_config,
                                               write_learned)
from testing_utils import REPO_ROOT, load_module
from testing_utils import clip as H

from mmprompt.apis import ZeroShotClassifier

TEST = load_module('_mmprompt_test_py_learned',
                   osp.join(REPO_ROOT, 'tools', 'test.py'))
INFER = load_module('_mmprompt_tools_infer',
                    osp.join(REPO_ROOT, 'tools', 'infer.py'))
EXPORT = load_module(
    '_mmprompt_pytorch2onnx',
    osp.join(REPO_ROOT, 'tools', 'deployment', 'pytorch2onnx.py'))
# As tests/test_demo imports it (demo/ on sys.path there).
DEMO = load_module('demo_backend',
                   osp.join(REPO_ROOT, 'demo', 'demo_backend.py'))
CUSTOM_CFG = 'clip/clip_vit-base-p16_zeroshot-cls_custom.py'
KINDS = ('names', 'descriptions', 'examples', 'learned')
ENTRY_POINTS = ('test_py', 'infer_py', 'demo', 'onnx')
DESCRIPTIONS = {
    'beagle': ['a small hound with long ears'],
    'owl': ['a bird of prey with big eyes', 'it hunts at night'],
    'tabby cat': ['a cat with a striped coat'],
}
# Max abs diff with the inferencer's pred_scores (one image per batch).
# The demo calls the inferencer: bit-identical. tools/test.py batches four
# images (1.5e-7 seen); tools/infer.py batches them too and writes scores
# rounded to 6 decimals (5.6e-7 seen); onnxruntime 1.8e-7 seen.
BOUNDS = dict(test_py=1e-6, infer_py=1e-6, demo=0.0, onnx=1e-5)


def write_images(folder, seed: int, sizes) -> list:
    """One JPEG per class under ``folder/<name>/``, each of its own size."""
    rng = np.random.default_rng(seed)
    paths = []
    for name, (h, w) in zip(NAMES, sizes):
        (folder / name).mkdir(parents=True)
        path = folder / name / '0.jpg'
        Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    pytest.importorskip('open_clip')
    root = tmp_path_factory.mktemp('one_table')
    ckpt = H.write_converted_checkpoint(str(root / 'tiny.pth'), seed=1)
    images = write_images(root / 'data' / 'test', 0,
                          [(50, 70), (64, 64), (80, 48), (70, 90)])
    examples = root / 'examples'
    write_images(examples, 1, [(60, 60)] * len(NAMES))
    names = root / 'names.txt'
    names.write_text('\n'.join(NAMES) + '\n')
    descriptions = root / 'descriptions.json'
    descriptions.write_text(json.dumps(DESCRIPTIONS))
    pipeline = (f'test_dataloader = dict(num_workers=0, batch_size=4, '
                f"dataset=dict(data_root={str(root / 'data')!r}, "
                "pipeline=[dict(type='CLIPPreprocess', scale=64), "
                "dict(type='PackInputs')]))\n")
    inputs = dict(names={}, descriptions=dict(descriptions=str(descriptions)),
                  examples=dict(examples=str(examples)))
    # tools/test.py reads the names from the folder; tools/infer.py takes
    # descriptions and examples from its config (it has no options for
    # them), and they need the categories there.
    configs = {
        kind: H.write_tiny_config(
            str(root / f'{kind}.py'), CUSTOM_CFG,
            model=dict(templates='simple',
                       categories=str(names) if extra else None, **extra),
            extra=pipeline)
        for kind, extra in inputs.items()
    }
    coop = write_coop_config(root, ckpt)
    return dict(
        root=root, ckpt=ckpt, images=images, inputs=inputs, configs=configs,
        names=str(names), coop=coop,
        learned=write_learned(coop, str(root / 'coop.pth'), seed=0))


@pytest.fixture(scope='module')
def classifiers(setup):
    """The inferencer of each kind, built once."""
    built = {}

    def get(kind: str) -> ZeroShotClassifier:
        if kind not in built:
            learned = setup['learned'] if kind == 'learned' else None
            built[kind] = ZeroShotClassifier(
                setup['configs']['names'], pretrained=setup['ckpt'],
                learned=learned)
        return built[kind]

    return get


def api_scores(setup, classifier, kind: str) -> np.ndarray:
    """Entry point (a): ``ZeroShotClassifier(...)(images, ...)``."""
    kwargs = {} if kind == 'learned' else dict(categories=NAMES,
                                               **setup['inputs'][kind])
    results = classifier(setup['images'], **kwargs)
    return np.stack([r['pred_scores'] for r in results])


def tools_test_scores(setup, kind: str, tmp_path) -> np.ndarray:
    """``tools/test.py CONFIG CHECKPOINT --dump``: ``pred_score`` per
    sample; descriptions and examples as ``--cfg-options``."""
    dump = str(tmp_path / 'preds.pkl')
    if kind == 'learned':
        args = [setup['coop'], setup['learned']]
    else:
        options = [f'model.{k}={v}' for k, v in setup['inputs'][kind].items()]
        if options:
            options.append(f"model.categories={setup['names']}")
        args = [setup['configs']['names'], setup['ckpt']]
        args += ['--cfg-options', *options] if options else []
    TEST.main([*args, '--work-dir', str(tmp_path / 'work'), '--dump', dump,
               '--no-progress'])
    with open(dump, 'rb') as f:
        preds = {p['img_path']: p['pred_score'].numpy()
                 for p in pickle.load(f)}
    return np.stack([preds[p] for p in setup['images']])


def infer_py_scores(setup, kind: str, tmp_path) -> np.ndarray:
    """``tools/infer.py classify --topk C``: the vector rebuilt from each
    record's ``classes`` and ``scores``."""
    out = tmp_path / 'classes.jsonl'
    if kind == 'learned':
        model = ['--model', setup['configs']['names'], '--learned',
                 setup['learned']]
    elif kind == 'names':
        model = ['--model', setup['configs']['names'], '--categories', *NAMES]
    else:
        model = ['--model', setup['configs'][kind]]
    INFER.main([
        'classify', *setup['images'], *model, '--checkpoint', setup['ckpt'],
        '--topk', str(len(NAMES)), '--out', str(out), '--device', 'cpu',
        '--num-workers', '0', '--no-progress'
    ])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r['image'] for r in records] == setup['images']
    return np.stack([[dict(zip(r['classes'], r['scores']))[n] for n in NAMES]
                     for r in records])


def demo_scores(setup, kind: str, tmp_path) -> np.ndarray:
    """The demo's classify handler, top-k = all, each image an upload."""
    learned = setup['learned'] if kind == 'learned' else None
    backend = DEMO.MMPromptBackend(
        setup['configs']['names'], setup['ckpt'], device='cpu',
        learned=learned)
    descriptions = '\n'.join(f'{name}: {text}'
                             for name, texts in DESCRIPTIONS.items()
                             for text in texts)
    examples = setup['inputs']['examples']['examples']
    slots = [(name, [osp.join(examples, name, '0.jpg')]) for name in NAMES]
    rows = []
    for image in setup['images']:
        scores = DEMO.run_classify(
            backend, image, ', '.join(NAMES),
            descriptions if kind == 'descriptions' else None,
            slots if kind == 'examples' else [], 'simple', len(NAMES))
        rows.append([scores[n] for n in NAMES])
    return np.array(rows)


def onnx_scores(setup, kind: str, tmp_path, pipeline) -> np.ndarray:
    """``pytorch2onnx.py --categories/--descriptions/--examples/--learned``
    run by onnxruntime on the inferencer's preprocessed pixels."""
    for name in ('onnx', 'onnxruntime', 'onnxscript'):
        pytest.importorskip(name, reason=f'the deploy extra ({name}) is '
                            'missing')
    from mmprompt.deployment import onnx_session
    out = str(tmp_path / f'{kind}.onnx')
    args = [setup['configs']['names'], out, '--checkpoint', setup['ckpt']]
    if kind == 'learned':
        args += ['--learned', setup['learned']]
    else:
        args += ['--categories', *NAMES]
        args += [f'--{k}={v}' for k, v in setup['inputs'][kind].items()]
    assert EXPORT.main(args) == 0
    # The graph takes RGB in [0, 255]; the pipeline gives BGR uint8.
    pixels = torch.stack(
        [pipeline(p)['inputs'].flip(0).float() for p in setup['images']])
    return onnx_session(out).run(None, dict(images=pixels.numpy()))[0]


RUNNERS = dict(test_py=tools_test_scores, infer_py=infer_py_scores,
               demo=demo_scores)


@pytest.mark.parametrize('entry', ENTRY_POINTS)
@pytest.mark.parametrize('kind', KINDS)
def test_same_scores_as_the_inferencer(setup, classifiers, kind, entry,
                                       tmp_path):
    """Row (kind, entry): the entry point's score vectors of the four
    images equal the inferencer's ``pred_scores`` within ``BOUNDS``."""
    classifier = classifiers(kind)
    want = api_scores(setup, classifier, kind)
    assert want.shape == (len(NAMES), len(NAMES))
    np.testing.assert_allclose(want.sum(1), 1, atol=1e-6)
    if kind != 'names':  # the input counts: dropping it would show
        names = api_scores(setup, classifiers('names'), 'names')
        assert np.abs(want - names).max() > 1e-3
    if entry == 'onnx':
        got = onnx_scores(setup, kind, tmp_path, classifier.pipeline)
    else:
        got = RUNNERS[entry](setup, kind, tmp_path)
    diff = float(np.abs(got - want).max())
    print(f'{kind:>12} x {entry:<8} max abs diff {diff:.1e}')
    assert diff <= BOUNDS[entry], (kind, entry, diff)
