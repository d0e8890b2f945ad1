# Copyright (c) mmprompt contributors. All rights reserved.
"""A NaN or infinite score is never printed nor written: the models refuse
non-finite logits, the tools stop in one line, calibration refuses them."""
import os.path as osp
import re

import pytest
import torch
from PIL import Image
from testing_utils import REPO_ROOT, load_module
from testing_utils import clip as H
from testing_utils import ram as R

from mmprompt.evaluation.calibration import calibrate_thresholds
from mmprompt.models.clip.clip import CLIPZeroShot
from mmprompt.models.ram.ram import RAM
from mmprompt.utils.errors import NonFiniteScoresError, run_tool
from mmprompt.utils.scores import check_finite_scores

INFER = load_module('_mmprompt_tools_infer_nonfinite',
                    osp.join(REPO_ROOT, 'tools', 'infer.py'))
MESSAGE = ('the model produced non-finite scores (NaN/Inf) for {} image(s); '
           'the weights or inputs are broken')


def _images(folder, num=3):
    folder.mkdir()
    for i in range(num):
        Image.new('RGB', (40, 32), (60 * i, 20, 200)).save(
            folder / f'{i}.png')
    return str(folder)


def _last_line(capsys):
    """The tool's error line (mmengine's logger may have written before)."""
    return capsys.readouterr().err.splitlines()[-1]


def _poisoned(compute):
    """``compute`` with image 1 of each batch made NaN and image 2 +Inf."""

    def wrapped(self, *args, **kwargs):
        logits = compute(self, *args, **kwargs).clone()
        logits[1:2, 0] = float('nan')
        logits[2:3, -1] = float('inf')
        return logits

    return wrapped


def test_check_finite_scores_counts_images():
    scores = torch.zeros(4, 3)
    assert check_finite_scores(scores) is scores
    scores[1, 2] = float('nan')
    scores[3] = float('-inf')
    with pytest.raises(NonFiniteScoresError) as info:
        check_finite_scores(scores)
    assert str(info.value) == MESSAGE.format(2)
    with pytest.raises(NonFiniteScoresError, match=r'^x: the model .* for 1 '):
        check_finite_scores(torch.tensor([0., float('inf')]), 'x: ')


@pytest.fixture(scope='module')
def clip_files(tmp_path_factory):
    pytest.importorskip('open_clip')
    root = tmp_path_factory.mktemp('nonfinite_clip')
    return dict(
        root=root,
        checkpoint=H.write_converted_checkpoint(str(root / 'clip.pth')),
        config=H.write_tiny_config(
            str(root / 'cfg.py'),
            'clip/clip_vit-base-p16_zeroshot-cls_in1k.py',
            model=dict(categories=['cat', 'dog', 'car'],
                       templates='simple')))


def test_classify_stops_before_writing_nan(clip_files, tmp_path, capsys,
                                           monkeypatch):
    """tools/infer.py classify: exit 2, one line, no output file."""
    monkeypatch.setattr(CLIPZeroShot, 'compute_class_logits',
                        _poisoned(CLIPZeroShot.compute_class_logits))
    out = tmp_path / 'classes.jsonl'
    with pytest.raises(SystemExit) as info:
        run_tool(INFER.main, [
            'classify',
            _images(tmp_path / 'photos'), '--model', clip_files['config'],
            '--checkpoint', clip_files['checkpoint'], '--out',
            str(out), '--no-progress', '--num-workers', '0',
            '--batch-size', '3'
        ])
    assert info.value.code == 2
    assert _last_line(capsys) == f'error: {MESSAGE.format(2)}'
    assert not out.exists()


def test_classifier_never_returns_nan(clip_files, monkeypatch):
    """The inferencer (demo/classify.py, the Gradio demo) refuses too."""
    from mmprompt.apis import ZeroShotClassifier
    classifier = ZeroShotClassifier(clip_files['config'],
                                    clip_files['checkpoint'])
    image = torch.randint(0, 255, (32, 40, 3), dtype=torch.uint8).numpy()
    assert len(classifier([image] * 3, batch_size=3)) == 3
    monkeypatch.setattr(CLIPZeroShot, 'compute_class_logits',
                        _poisoned(CLIPZeroShot.compute_class_logits))
    with pytest.raises(
            NonFiniteScoresError, match=re.escape(MESSAGE.format(2))):
        classifier([image] * 3, batch_size=3)


@pytest.fixture(scope='module')
def ram_files(tmp_path_factory, ram_vectors_dir):
    root = tmp_path_factory.mktemp('nonfinite_ram')
    return dict(
        checkpoint=R.convert_tiny(ram_vectors_dir, str(root)),
        config=R.write_tiny_config(
            str(root / 'normal.py'),
            'ram/ram_swin-large-p4-w12_384px_normal.py', 20))


def test_tagging_tools_stop_before_writing_nan(ram_files, tmp_path, capsys,
                                               monkeypatch):
    """tools/infer.py tag: an infinite logit (which sigmoid would turn
    into a confident 1.0) stops it, nothing written."""
    monkeypatch.setattr(RAM, 'compute_logits',
                        _poisoned(RAM.compute_logits))
    photos = _images(tmp_path / 'photos')
    out = tmp_path / 'tags.jsonl'
    with pytest.raises(SystemExit) as info:
        run_tool(INFER.main, [
            'tag', photos, '--model', ram_files['config'], '--checkpoint',
            ram_files['checkpoint'], '--out',
            str(out), '--no-progress', '--num-workers', '0',
            '--batch-size', '3'
        ])
    assert info.value.code == 2
    assert _last_line(capsys) == f'error: {MESSAGE.format(2)}'
    assert not out.exists()


def test_calibration_refuses_nan_scores():
    scores = torch.tensor([[0.9, 0.2], [0.1, float('nan')], [0.7, 0.4]])
    target = torch.tensor([[1, 0], [0, 1], [1, 0]]).bool()
    with pytest.raises(NonFiniteScoresError) as info:
        calibrate_thresholds(scores, target, torch.full((2, ), 0.5))
    assert str(info.value) == ('cannot calibrate thresholds: ' +
                               MESSAGE.format(1))
