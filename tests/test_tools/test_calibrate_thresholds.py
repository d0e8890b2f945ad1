# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/calibrate_thresholds.py on the tiny RAM checkpoint.

The calibrated checkpoint, evaluated by tools/test.py, gives the report's
after-figures; the input checkpoint is untouched; bad inputs fail in one
line.
"""
import hashlib
import json
import os.path as osp
import shutil

import pytest
import torch
from testing_utils import REPO_ROOT, load_module
from testing_utils import ram as H

from mmprompt.evaluation.calibration import calibrate_thresholds
from mmprompt.utils.checkpoint import read_checkpoint
from mmprompt.utils.errors import UserError

CALIB = load_module('_mmprompt_calibrate_thresholds',
                    osp.join(REPO_ROOT, 'tools', 'calibrate_thresholds.py'))
TEST = load_module('_mmprompt_tools_test',
                   osp.join(REPO_ROOT, 'tools', 'test.py'))
COMMON_CFG = 'ram/ram_swin-large-p4-w12_384px_openimages-common.py'
SAMPLES = (('a', 0), ('b', 1), ('c', 0), ('d', 1))
KEYS = ('CP', 'CR', 'CF1', 'OP', 'OR', 'OF1')


def sha(path) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(scope='module')
def bench(ram_vectors_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp('calibrate')
    (root / 'imgs').mkdir()
    for name, src in SAMPLES:
        shutil.copy(
            osp.join(ram_vectors_dir, 'images', H.IMAGES[src]),
            root / 'imgs' / f'{name}.png')
    meta = H.expected(ram_vectors_dir)
    tags = meta['tags_en']
    H.write_lines(str(root / 'model_tags.txt'), tags)
    selected = [{tags[i]
                 for i in row.nonzero()[:, 0].tolist()}
                for row in meta['targets']]
    # The truth: what the model selects on image 0 minus one tag, plus
    # one of its unselected tags on image 1: thresholds can do better.
    extra = sorted(set(tags) - selected[1])[0]
    truth = [sorted(selected[0])[1:], sorted(selected[1] | {extra})]
    classes = sorted(set(truth[0]) | set(truth[1]))
    H.write_lines(str(root / 'classes.txt'), classes)
    H.write_lines(str(root / 'ann.txt'), [
        ','.join([name, *truth[src]]) for name, src in SAMPLES
    ])
    dataset = dict(
        data_root=str(root),
        ann_file='ann.txt',
        data_prefix='imgs',
        img_suffix='.png',
        classes='classes.txt',
        model_tag_list='model_tags.txt')
    config = H.write_tiny_config(
        str(root / 'calib.py'), COMMON_CFG, 20,
        f'test_dataloader = dict(batch_size=2, num_workers=0, '
        f'dataset={dataset!r})\n')
    return dict(
        root=root,
        config=config,
        ckpt=H.convert_tiny(ram_vectors_dir, str(root)),
        classes=classes)


def evaluate(bench, ckpt, name):
    out = bench['root'] / f'{name}.json'
    TEST.main([
        bench['config'], str(ckpt), '--out',
        str(out), '--work-dir',
        str(bench['root'] / 'work'), '--no-progress'
    ])
    with open(out) as f:
        metrics = json.load(f)['metrics']
    return {k: metrics[f'tagging/{k}'] for k in KEYS}


def test_calibrated_checkpoint_reproduces_the_report(bench, tmp_path):
    before_sha = sha(bench['ckpt'])
    out = tmp_path / 'calibrated.safetensors'
    report = CALIB.main([bench['config'], bench['ckpt'], str(out)])
    assert sha(bench['ckpt']) == before_sha
    with open(tmp_path / 'calibrated.json') as f:
        assert json.load(f) == json.loads(json.dumps(report))
    assert (tmp_path / 'calibrated.txt').read_text().startswith('tag')
    overall = report['overall']
    assert overall['after']['OF1'] > overall['before']['OF1']
    got_before = evaluate(bench, bench['ckpt'], 'before')
    got_after = evaluate(bench, out, 'after')
    for key in KEYS:
        assert got_before[key] == pytest.approx(overall['before'][key],
                                                abs=1e-9)
        assert got_after[key] == pytest.approx(overall['after'][key],
                                               abs=1e-9)
    # The thresholds in the file are the report's, at the model's indices.
    sd, meta = read_checkpoint(str(out))
    old, _ = read_checkpoint(bench['ckpt'])
    tags = meta['tag_list']
    for row in report['tags']:
        k = tags.index(row['tag'])
        assert float(sd['class_threshold'][k]) == row['new_threshold']
        assert float(old['class_threshold'][k]) == pytest.approx(
            row['old_threshold'])
    others = [i for i, t in enumerate(tags) if t not in bench['classes']]
    assert torch.equal(sd['class_threshold'][others],
                       old['class_threshold'][others])
    # Refused without --force; the input is never an output.
    with pytest.raises(UserError, match='exists; pass --force'):
        CALIB.main([bench['config'], bench['ckpt'], str(out)])
    with pytest.raises(UserError, match='one of the inputs'):
        CALIB.main([bench['config'], bench['ckpt'], bench['ckpt']])


def test_calibration_tags_not_the_models(bench, tmp_path):
    H.write_lines(str(bench['root'] / 'alien.txt'), ['unicorn', 'pet'])
    H.write_lines(str(bench['root'] / 'alien_ann.txt'), ['a,pet', 'b'])
    options = [
        '--cfg-options', 'test_dataloader.dataset.classes=alien.txt',
        'test_dataloader.dataset.ann_file=alien_ann.txt',
        'test_dataloader.dataset.model_tag_list=None'
    ]
    with pytest.raises(UserError, match="not the model's tags: 'unicorn'"):
        CALIB.main([bench['config'], bench['ckpt'],
                    str(tmp_path / 'x.pth'), *options])
    assert not (tmp_path / 'x.pth').exists()


def test_unknown_tag_in_the_annotations(bench, tmp_path, capsys):
    """One line naming the file, the line, the tag and the nearest known
    tags; nothing written."""
    from mmprompt.utils.errors import run_tool
    known = bench['classes'][0]
    typo = known[:-1]
    H.write_lines(str(bench['root'] / 'typo_ann.txt'),
                  ['a', f'b,{typo}'])
    out = tmp_path / 'x.pth'
    with pytest.raises(SystemExit) as exit_info:
        run_tool(CALIB.main, [
            bench['config'], bench['ckpt'],
            str(out), '--cfg-options',
            'test_dataloader.dataset.ann_file=typo_ann.txt'
        ])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(
        f"error: {bench['root'] / 'typo_ann.txt'}:2: tag {typo!r} is not "
        f'one of the classes; did you mean {known!r}')
    assert 'Traceback' not in err
    assert not out.exists() and not (tmp_path / 'x.json').exists()


def test_recovers_the_best_cut_of_real_scores():
    """Scores as the model gives them (float32, not dyadic): every cut is
    strictly between the selected and the unselected scores."""
    torch.manual_seed(0)
    scores = torch.rand(50, 6)
    target = torch.rand(50, 6) < 0.3
    result = calibrate_thresholds(scores, target, torch.full((6, ), 0.5))
    thr = result['thresholds']
    assert thr.dtype == torch.float32
    for k in range(6):
        best = 0.0
        for cut in scores[:, k].unique():
            sel = scores[:, k] >= cut
            tp = (sel & target[:, k]).sum().item()
            f1 = 2 * tp / (sel.sum().item() + target[:, k].sum().item())
            best = max(best, f1)
        sel = scores[:, k] > thr[k]
        tp = (sel & target[:, k]).sum().item()
        got = 2 * tp / (sel.sum().item() + target[:, k].sum().item())
        assert got == pytest.approx(best)


def test_open_set_thresholds_round_trip(bench, ram_vectors_dir, tmp_path):
    """Open-set categories: the thresholds go to the checkpoint's meta, and
    tools/test.py (through PrepareOpensetHook) uses them."""
    with open(osp.join(ram_vectors_dir, 'ram_tiny_openset.json')) as f:
        categories = json.load(f)['categories']
    root = bench['root']
    text_ckpt = H.save_text_encoder(str(root / 'text.pth'))
    H.write_lines(str(root / 'open_classes.txt'), categories)
    truth = {0: categories[:3], 1: categories[2:6]}
    H.write_lines(str(root / 'open_ann.txt'), [
        ','.join([name, *truth[src]]) for name, src in SAMPLES
    ])
    dataset = dict(
        data_root=str(root),
        ann_file='open_ann.txt',
        data_prefix='imgs',
        img_suffix='.png',
        classes='open_classes.txt')
    config = H.write_tiny_config(
        str(root / 'open.py'),
        'ram/ram_swin-large-p4-w12_384px_openset_openimages-rare.py',
        20,
        f'test_dataloader = dict(batch_size=2, num_workers=0, '
        f'dataset={dataset!r})\n',
        text_encoder=H.tiny_text_encoder(text_ckpt),
        categories=str(root / 'open_classes.txt'),
        templates='openai_imagenet')
    out = tmp_path / 'open_calibrated.pth'
    report = CALIB.main([config, bench['ckpt'], str(out)])
    assert report['open_set']
    _, meta = read_checkpoint(str(out))
    new = meta['openset_thresholds']
    assert sorted(new) == sorted(categories)
    assert any(v != 0.5 for v in new.values())
    # The after-figures differ from the flat 0.5's, so matching them below
    # means tools/test.py used the calibrated thresholds.
    assert report['overall']['after']['OF1'] != \
        report['overall']['before']['OF1']
    open_bench = dict(bench, config=config)
    got = evaluate(open_bench, out, 'open_after')
    for key in KEYS:
        assert got[key] == pytest.approx(report['overall']['after'][key],
                                         abs=1e-9)
