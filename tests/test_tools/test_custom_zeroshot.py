# Copyright (c) mmprompt contributors. All rights reserved.
"""Zero-shot evaluation of your own folder (issue #22): the categories come
from the test set's folder names, top-k fits any number of classes, and
``Runner.from_cfg`` on the config gives what ``tools/test.py`` gives."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from PIL import Image

from testing_utils import REPO_ROOT, load_module
from testing_utils import clip as H

TOOL = load_module('_mmprompt_tools_test',
                   osp.join(REPO_ROOT, 'tools', 'test.py'))
CUSTOM_CFG = 'clip/clip_vit-base-p16_zeroshot-cls_custom.py'
CLASSES = ('beagle', 'owl', 'tabby_cat')


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('custom')
    data = root / 'custom'
    rng = np.random.default_rng(0)
    for name in CLASSES:
        (data / 'test' / name).mkdir(parents=True)
        for i in range(2):
            pixels = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(data / 'test' / name / f'{i}.jpg')
    pipeline = ("test_dataloader = dict(num_workers=0, batch_size=4, "
                "dataset=dict(data_root=%r, pipeline=[dict(type="
                "'CLIPPreprocess', scale=64), dict(type='PackInputs')]))\n"
                % str(data))
    config = H.write_tiny_config(
        str(root / 'cfg.py'), CUSTOM_CFG, model=dict(templates='simple'),
        extra=pipeline)
    ckpt = H.write_converted_checkpoint(str(root / 'tiny.pth'))
    return dict(root=root, config=config, ckpt=ckpt)


def test_custom_folder_categories_and_topk(setup, tmp_path):
    out = tmp_path / 'metrics.json'
    metrics = TOOL.main([
        setup['config'], setup['ckpt'], '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(out), '--no-progress'
    ])
    # Top-5 among 3 classes is top-3: every image's class is among them.
    assert sorted(metrics) == [
        'accuracy/top1', 'accuracy/top3', 'mean_per_class_recall'
    ]
    assert metrics['accuracy/top3'] == 100.0
    assert json.loads(out.read_text())['num_samples'] == 6

    # The config alone reproduces the tool.
    cfg = Config.fromfile(setup['config'])
    cfg.work_dir = str(tmp_path / 'runner')
    cfg.load_from = setup['ckpt']
    runner = Runner.from_cfg(cfg)
    again = runner.test()
    assert {k: float(v) for k, v in again.items()} == metrics
    assert runner.model.categories == ['beagle', 'owl', 'tabby cat']

    # The same as the model's own predictions among the folder's names.
    model = runner.model
    hits = 0
    with torch.no_grad():
        for batch in runner.test_dataloader:
            data = model.data_preprocessor(batch, False)
            samples = model.predict(data['inputs'], data['data_samples'])
            hits += sum(
                int(s.pred_label.item() == s.gt_label.item())
                for s in samples)
    assert metrics['accuracy/top1'] == pytest.approx(100 * hits / 6)
