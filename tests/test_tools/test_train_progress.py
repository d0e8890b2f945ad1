# Copyright (c) mmprompt contributors. All rights reserved.
"""Issue 22: a training run shows its epoch and the time left, a test run
its progress on stderr (stdout is the log's), and our own code raises no
deprecation warning on the way."""
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import torch
from mmcv import imwrite
from test_tools.test_quiet import in1k  # noqa: F401
from testing_utils import REPO_ROOT

from mmprompt.registry import MODELS
from mmprompt.utils.checkpoint import save_checkpoint


def write_coop(root) -> str:
    """A CoOp config of the repository's recipe over a tiny random CLIP,
    2 epochs of 3 batches on 3 x 4 images."""
    from test_models.test_prompt_learning import clip_cfg
    rng = np.random.default_rng(0)
    for name in ('cat', 'dog', 'car'):
        os.makedirs(root / 'data' / 'train' / name)
        for i in range(4):
            imwrite(rng.integers(0, 256, (40, 36, 3), np.uint8),
                    str(root / 'data' / 'train' / name / f'{i}.png'))
    torch.manual_seed(0)
    clip_path = str(root / 'clip.pth')
    save_checkpoint(MODELS.build(clip_cfg(tiny=True)).state_dict(), {},
                    clip_path)
    cfg = dict(clip_cfg(tiny=True),
               init_cfg=dict(type='Pretrained', checkpoint=clip_path))
    base = osp.join(REPO_ROOT, 'configs', 'coop',
                    'coop_vit-base-p16_16shots_custom.py')
    config = root / 'coop.py'
    config.write_text(f"""_base_ = [{base!r}]
model = dict(clip=dict(_delete_=True, **{cfg!r}), n_ctx=4)
train_dataloader = dict(batch_size=4, num_workers=0, dataset=dict(shots=4,
    dataset=dict(data_root={str(root / 'data')!r})))
train_cfg = dict(max_epochs=2)
""")
    return str(config)


def run_tool(argv: list) -> subprocess.CompletedProcess:
    """``python -W error::DeprecationWarning:mmprompt argv...``: a
    deprecation warning raised from one of our modules fails the run."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [REPO_ROOT, osp.join(REPO_ROOT, 'tests')]), OMP_NUM_THREADS='1')
    return subprocess.run(
        [sys.executable, '-W', 'error::DeprecationWarning:mmprompt', *argv],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        timeout=300)


def test_training_log_shows_epoch_and_eta(tmp_path):
    """The recipe's log (every 10 iterations, or at the end of a shorter
    epoch) names the epoch out of all and the ETA; no DeprecationWarning
    is raised from a file of mmprompt (``-W error`` for our modules
    only), and the checkpoint hook logs no FileClient deprecation."""
    config = write_coop(tmp_path)
    result = run_tool([
        osp.join(REPO_ROOT, 'tools', 'train.py'), config, '--work-dir',
        str(tmp_path / 'work')
    ])
    out = result.stdout
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in out.splitlines() if 'eta: ' in line]
    assert len(lines) == 2, out[-3000:]
    assert 'Epoch(train) [1/2][3/3]' in lines[0], lines
    assert 'Epoch(train) [2/2][3/3]' in lines[1], lines
    assert 'Traceback' not in out + result.stderr
    assert 'deprecated' not in out + result.stderr, out[-3000:]


def test_test_progress_on_stderr_only(in1k, tmp_path):  # noqa: F811
    """tools/test.py: the progress line on stderr (whole lines, not a
    terminal here), none of it among the log lines on stdout."""
    result = run_tool([
        osp.join(REPO_ROOT, 'tools', 'test.py'), in1k['config'], in1k['ckpt'],
        '--work-dir',
        str(tmp_path / 'w'), '--cfg-options',
        f"test_dataloader.dataset.data_root={in1k['root'] / 'imagenet'}"
    ])
    assert result.returncode == 0, result.stderr[-3000:]
    bar = re.compile(r'\[1/1\]\s+[\d.]+ img/s, 00:00:00 left\n')
    assert bar.search(result.stderr), result.stderr[-3000:]
    assert not re.search('img/s, .* left', result.stdout)
    assert 'accuracy/top1' in result.stdout
