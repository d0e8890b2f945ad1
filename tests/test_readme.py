# Copyright (c) mmprompt contributors. All rights reserved.
"""README.md's commands, read from the README and run as written (issue
#22): convert a random-weight OpenAI-layout CLIP with the README's
converter command, evaluate your own folder and an ImageNet folder, train
CoOp on your own folder and evaluate what it learned; each must exit 0 on
its first try.

Each command runs in a subprocess in a scratch folder laid out as the
README assumes (``tools/`` of this checkout, ``configs/``, ``data/custom``,
``ViT-B-16.pt``). What differs from a real run is explicit:

- ``ViT-B-16.pt`` is a random CLIP in OpenAI's layout, tiny (64 wide, two
  layers per tower, 224 px in 32 px patches);
- each config the commands name is, at the same path, a leaf config whose
  ``_base_`` is the checkout's config and which only shrinks the model to
  that size (plus :data:`MODEL_EXTRAS` and :data:`CONFIG_EXTRAS`);
- :data:`SUBSTITUTIONS` replaces the paths of data the test cannot have.

A command of :data:`COMMANDS` missing from the README fails the test, so
the README and this test cannot drift apart. The README's other commands
need the real weights or data (downloads) or are the test suite itself.
"""
import os
import os.path as osp
import re
import shlex
import subprocess
import sys
from typing import Dict, List

import numpy as np
import pytest
import torch
from PIL import Image

from testing_utils import REPO_ROOT
from testing_utils import clip as H

IMG = 224
CLASSES = ('owl', 'tabby_cat')
#: The README commands run, in order, by how each starts.
COMMANDS = (
    'python tools/model_converters/openai_clip_to_mmprompt.py ViT-B-16.pt',
    'python tools/test.py configs/clip/clip_vit-base-p16_zeroshot-cls_custom',
    'python tools/test.py configs/clip/clip_vit-base-p16_zeroshot-cls_in1k',
    'python tools/train.py configs/coop/coop_vit-base-p16_16shots_custom',
    'python tools/test.py configs/coop/coop_vit-base-p16_16shots_custom',
)
#: Paths in the README's commands of data the test cannot have.
SUBSTITUTIONS = {'/data/imagenet': 'imagenet'}
#: Config lines beside the tiny model, for time: ImageNet's 1000 names
#: with one template, not 80; CoOp for one epoch, no worker processes.
MODEL_EXTRAS = {
    'clip/clip_vit-base-p16_zeroshot-cls_in1k.py': dict(templates='simple')
}
CONFIG_EXTRAS = {
    'clip/clip_vit-base-p16_zeroshot-cls_in1k.py':
    'test_dataloader = dict(num_workers=0)\n',
    'clip/clip_vit-base-p16_zeroshot-cls_custom.py':
    'test_dataloader = dict(num_workers=0)\n',
    'coop/coop_vit-base-p16_16shots_custom.py':
    'train_cfg = dict(max_epochs=1)\n'
    'train_dataloader = dict(num_workers=0, batch_size=8)\n'
    'test_dataloader = dict(num_workers=0)\n',
}


def readme_commands() -> List[str]:
    """The commands of README.md's fenced bash blocks, continuation lines
    joined, comments dropped."""
    with open(osp.join(REPO_ROOT, 'README.md'), encoding='utf-8') as f:
        text = f.read()
    commands = []
    for block in re.findall(r'```bash\n(.*?)```', text, re.S):
        block = block.replace('\\\n', ' ')
        for line in block.splitlines():
            line = line.split(' #')[0].strip()
            if line and not line.startswith('#'):
                commands.append(' '.join(line.split()))
    return commands


def pick_commands() -> List[str]:
    """The README's command for each of :data:`COMMANDS`, exactly one."""
    commands = readme_commands()
    picked = []
    for start in COMMANDS:
        found = [c for c in commands if c.startswith(start)]
        assert len(found) == 1, (
            f'README.md should have one command starting {start!r}, has '
            f'{len(found)}: update the README or tests/test_readme.py')
        picked.append(found[0])
    return picked


def write_images(folder: str, count: int, seed: int) -> None:
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(osp.join(folder, f'{i}.jpg'))


def write_config(root: str, rel: str) -> None:
    """At ``configs/<rel>`` under ``root``: the checkout's config, tiny."""
    overrides = H.tiny_model_overrides(IMG)
    if rel.startswith('coop/'):
        overrides = dict(clip=overrides)
    overrides.update(MODEL_EXTRAS.get(rel, {}))
    path = osp.join(root, 'configs', rel)
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(f"_base_ = [{osp.join(REPO_ROOT, 'configs', rel)!r}]\n"
                f'model = dict(**{overrides!r})\n' + CONFIG_EXTRAS[rel])


def lay_out(root: str) -> None:
    """The scratch folder the README's commands expect."""
    os.symlink(osp.join(REPO_ROOT, 'tools'), osp.join(root, 'tools'))
    torch.save(H.openai_state_dict(0, IMG), osp.join(root, 'ViT-B-16.pt'))
    for rel in CONFIG_EXTRAS:
        write_config(root, rel)
    for i, name in enumerate(CLASSES):
        write_images(osp.join(root, 'data', 'custom', 'train', name), 16, i)
        write_images(osp.join(root, 'data', 'custom', 'test', name), 2,
                     10 + i)
    val = osp.join(root, 'imagenet', 'val')
    write_images(val, 3, 20)
    os.makedirs(osp.join(root, 'imagenet', 'meta'))
    with open(osp.join(root, 'imagenet', 'meta', 'val.txt'), 'w') as f:
        f.write(''.join(f'{i}.jpg {label}\n'
                        for i, label in enumerate((0, 417, 999))))


def as_run(command: str) -> List[str]:
    for old, new in SUBSTITUTIONS.items():
        command = command.replace(old, new)
    argv = shlex.split(command)
    assert argv[0] == 'python'
    return [sys.executable, *argv[1:]]


def test_readme_commands_are_the_tables():
    """Every command the test runs is in the README (fast: no model)."""
    picked = pick_commands()
    assert any('/data/imagenet' in c for c in picked)


@pytest.mark.slow
def test_readme_commands_run_as_written(tmp_path):
    root = str(tmp_path)
    lay_out(root)
    env: Dict[str, str] = dict(
        os.environ,
        PYTHONPATH=REPO_ROOT,
        OMP_NUM_THREADS='1',
        MMPROMPT_HOME=str(tmp_path / 'home'))
    for command in pick_commands():
        proc = subprocess.run(
            as_run(command), cwd=root, env=env, capture_output=True,
            text=True)
        assert proc.returncode == 0, (
            f'{command}\nexit {proc.returncode}\n{proc.stderr[-3000:]}')
    assert osp.isfile(osp.join(root, 'checkpoints', 'clip_vit-base-p16.pth'))
    for out in ('custom.json', 'results.json', 'coop.json'):
        assert osp.isfile(osp.join(root, out)), out
