# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/test.py refuses, in one line and before evaluating, what would
give a wrong or lost result (issue 12: sections 1, 2, 3, 5, 6)."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mmprompt.utils import CheckpointError, OutputPathError, UserError
from testing_utils import REPO_ROOT, load_module
from testing_utils import clip as H

TOOL = load_module('_mmprompt_tools_test',
                   osp.join(REPO_ROOT, 'tools', 'test.py'))
IN1K_CFG = 'clip/clip_vit-base-p16_zeroshot-cls_in1k.py'


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('in1k')
    data = root / 'imagenet'
    (data / 'val').mkdir(parents=True)
    (data / 'meta').mkdir()
    lines = []
    for i, label in enumerate([0, 1, 2, 999]):
        name = f'{i}.JPEG'
        Image.fromarray(np.full((40, 40, 3), 40 * i,
                                np.uint8)).save(data / 'val' / name)
        lines.append(f'{name} {label}\n')
    (data / 'meta' / 'val.txt').write_text(''.join(lines))
    config = H.write_tiny_config(
        str(root / 'cfg.py'), IN1K_CFG, model=dict(templates='simple'))
    ckpt = H.write_converted_checkpoint(str(root / 'tiny.pth'))
    return dict(root=root, data=data, config=config, ckpt=ckpt)


def argv(setup, tmp_path, *extra, ckpt=None, config=None):
    return [
        config or setup['config'], ckpt or setup['ckpt'], '--work-dir',
        str(tmp_path / 'work'), '--no-progress', *extra, '--cfg-options',
        f"test_dataloader.dataset.data_root={setup['data']}"
    ]


def test_evaluates_with_a_fitting_checkpoint(setup, tmp_path):
    out = tmp_path / 'm.json'
    metrics = TOOL.main(argv(setup, tmp_path, '--out', str(out)))
    assert set(metrics) >= {'accuracy/top1'}
    assert json.loads(out.read_text())['metrics'] == metrics
    assert oct(os.stat(out).st_mode & 0o777) == oct(0o644)


def test_wrong_checkpoints_are_refused(setup, tmp_path):
    raw = str(tmp_path / 'openai.pth')
    torch.save(H.openai_state_dict(), raw)
    rand = str(tmp_path / 'rand.pth')
    torch.save({'a': torch.ones(2)}, rand)
    data = open(setup['ckpt'], 'rb').read()
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(data[:len(data) // 3])
    out = tmp_path / 'm.json'
    for ckpt, message in [(raw, 'not converted; convert it with tools/'),
                          (rand, r'does not fit .*unexpected key'),
                          (str(cut), 'truncated or corrupt')]:
        with pytest.raises(CheckpointError, match=message):
            TOOL.main(argv(setup, tmp_path, '--out', str(out), ckpt=ckpt))
        assert not out.exists()


def test_outputs_checked_before_evaluating(setup, tmp_path, monkeypatch):
    evaluated = []
    monkeypatch.setattr(TOOL, 'build_runner', lambda *a: evaluated.append(1))
    existing = tmp_path / 'm.json'
    existing.write_text('{"keep": 1}')
    with pytest.raises(OutputPathError, match='exists; pass --force'):
        TOOL.main(argv(setup, tmp_path, '--out', str(existing)))
    assert existing.read_text() == '{"keep": 1}'
    (tmp_path / 'd.json').mkdir()
    with pytest.raises(OutputPathError, match='is a directory'):
        TOOL.main(argv(setup, tmp_path, '--out', str(tmp_path / 'd.json')))
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    with pytest.raises(OutputPathError, match='is not a folder'):
        TOOL.main(argv(setup, tmp_path, '--dump', str(blocker / 'p.pkl')))
    ckpt = tmp_path / 'w.pkl'  # a name --dump takes
    ckpt.write_bytes(open(setup['ckpt'], 'rb').read())
    with pytest.raises(OutputPathError, match='is one of the inputs'):
        TOOL.main(argv(setup, tmp_path, '--dump', str(ckpt), '--force',
                       ckpt=str(ckpt)))
    assert ckpt.read_bytes() == open(setup['ckpt'], 'rb').read()
    assert evaluated == []
    assert sorted(os.listdir(tmp_path)) == [
        'd.json', 'file', 'm.json', 'w.pkl']


def test_config_and_data_errors_are_one_line(setup, tmp_path):
    typo = H.write_tiny_config(
        str(tmp_path / 'typo.py'), IN1K_CFG, model=dict(templtes='simple'))
    with pytest.raises(
            UserError, match=r"model\.templtes is not a setting of "
            r"CLIPZeroShot; did you mean 'templates'\?"):
        TOOL.main(argv(setup, tmp_path, config=typo))
    args = argv(setup, tmp_path)
    args[-1] = f"test_dataloader.dataset.data_root={tmp_path / 'nowhere'}"
    with pytest.raises(UserError, match='the test dataset cannot be read'):
        TOOL.main(args)
    with pytest.raises(UserError, match='no such config file'):
        TOOL.main(argv(setup, tmp_path, config=str(tmp_path / 'no.py')))


def test_labels_beyond_the_categories(setup, tmp_path):
    few = H.write_tiny_config(
        str(tmp_path / 'few.py'),
        IN1K_CFG,
        model=dict(templates='simple', categories=['a', 'b', 'c']))
    with pytest.raises(
            UserError, match='labels up to 999, the model only 3 categories'):
        TOOL.main(argv(setup, tmp_path, config=few))
    # Labels fit: top-5 among 3 categories is reported as top-3.
    data = tmp_path / 'small'
    (data / 'val').mkdir(parents=True)
    (data / 'meta').mkdir()
    Image.new('RGB', (40, 40)).save(data / 'val' / 'a.JPEG')
    (data / 'meta' / 'val.txt').write_text('a.JPEG 2\n')
    args = argv(setup, tmp_path, config=few)
    args[-1] = f'test_dataloader.dataset.data_root={data}'
    metrics = TOOL.main(args)
    assert sorted(metrics) == ['accuracy/top1', 'accuracy/top3',
                               'mean_per_class_recall']
    assert metrics['accuracy/top3'] == 100.0


def test_cli_prints_one_line_and_exits_2(setup, tmp_path):
    raw = str(tmp_path / 'openai.pth')
    torch.save(H.openai_state_dict(), raw)
    proc = subprocess.run(
        [sys.executable,
         osp.join(REPO_ROOT, 'tools', 'test.py')] +
        argv(setup, tmp_path, ckpt=raw),
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ') and 'convert it with' in last
    assert 'Traceback' not in proc.stderr


PAYLOAD = ('import os, sys, torch\n'
           'class P:\n'
           '    def __reduce__(self):\n'
           "        return (os.system, ('touch ' + sys.argv[2],))\n"
           "torch.save({'state_dict': {}, 'x': P()}, sys.argv[1])\n")


def test_planted_payload_does_not_run(setup, tmp_path):
    ckpt, marker = str(tmp_path / 'evil.pth'), str(tmp_path / 'ran')
    subprocess.run([sys.executable, '-c', PAYLOAD, ckpt, marker], check=True)
    proc = subprocess.run(
        [sys.executable,
         osp.join(REPO_ROOT, 'tools', 'test.py')] +
        argv(setup, tmp_path, ckpt=ckpt),
        capture_output=True,
        text=True,
        env=dict(
            os.environ,
            PYTHONPATH=REPO_ROOT,
            TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD='1'))
    assert not osp.exists(marker)
    assert proc.returncode == 2
    assert 'weights-only load refuses' in proc.stderr


def test_bad_examples_are_one_line(setup, tmp_path):
    """A config's model.examples goes to PrepareZeroShotHook: examples of
    a category the model lacks are an error that names it, before any
    image is evaluated."""
    out = tmp_path / 'm.json'
    (tmp_path / 'examples' / 'no such category').mkdir(parents=True)
    with pytest.raises(UserError,
                       match="unknown categories: \\['no such category'"):
        TOOL.main(argv(setup, tmp_path, '--out', str(out)) +
                  [f"model.examples={tmp_path / 'examples'}"])
    assert not out.exists()
