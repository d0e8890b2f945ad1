# Copyright (c) mmprompt contributors. All rights reserved.
"""Bad input to prompt learning (issue 13): each is one line from
tools/train.py / tools/test.py (run_tool: ``error: ...``, exit status 2, no
traceback), before any training step."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmcv import imwrite
from testing_utils import REPO_ROOT, load_module

from mmprompt.registry import MODELS
from mmprompt.utils.checkpoint import save_checkpoint
from mmprompt.utils.errors import run_tool

TRAIN = load_module('mmprompt_train_py', osp.join(REPO_ROOT, 'tools',
                                                  'train.py'))
TEST = load_module('mmprompt_test_py', osp.join(REPO_ROOT, 'tools',
                                                'test.py'))
BASE = osp.join(REPO_ROOT, 'configs', 'coop',
                'coop_vit-base-p16_16shots_custom.py')


def clip_cfg(**overrides) -> dict:
    from test_models.test_prompt_learning import clip_cfg as cfg
    return dict(cfg(tiny=True), **overrides)


@pytest.fixture(scope='module')
def clip_path(tmp_path_factory):
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp('clip') / 'clip.pth')
    save_checkpoint(MODELS.build(clip_cfg()).state_dict(), {}, path)
    return path


def write(tmp_path, clip_path, counts, model='', clip=None) -> str:
    """A CoOp config over the tiny CLIP and a train folder with
    ``counts[name]`` images per class."""
    for name, n in counts.items():
        folder = tmp_path / 'data' / 'train' / name
        folder.mkdir(parents=True)
        for i in range(n):
            imwrite(np.full((8, 8, 3), i, np.uint8), str(folder / f'{i}.png'))
    cfg = clip or dict(clip_cfg(), init_cfg=dict(type='Pretrained',
                                                 checkpoint=clip_path))
    path = tmp_path / 'coop.py'
    path.write_text(
        f'_base_ = [{BASE!r}]\n'
        f'model = dict(clip=dict(_delete_=True, **{cfg!r}){model})\n'
        f"data_root = {str(tmp_path / 'data')!r}\n"
        'train_dataloader = dict(num_workers=0, dataset=dict(shots=2, '
        'dataset=dict(data_root=data_root)))\n'
        'test_dataloader = dict(num_workers=0, dataset=dict('
        'data_root=data_root, data_prefix="train"))\n')
    return str(path)


def one_line_error(capsys, main, argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_tool(main, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: '), err
    assert 'Traceback' not in err[0]
    return err[0]


@pytest.fixture(autouse=True)
def _logger_outside_capsys():
    """MMEngine's logger keeps the stream it was made with: make it before
    capsys swaps stderr."""
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance()


def test_too_few_images_and_an_empty_folder(tmp_path, clip_path, capsys):
    config = write(tmp_path, clip_path, dict(cat=3, dog=1, empty=0))
    line = one_line_error(capsys, TRAIN.main,
                          [config, '--work-dir', str(tmp_path / 'w')])
    assert '2 class(es) have fewer than 2 images: dog (1), empty (0)' in line
    assert 'no images at all for empty' in line


def test_names_too_long_for_the_context(tmp_path, clip_path, capsys):
    long_name = 'very ' * 30 + 'long name'
    config = write(tmp_path, clip_path, {'cat': 2, long_name: 2},
                   model=', n_ctx=45')
    line = one_line_error(capsys, TRAIN.main,
                          [config, '--work-dir', str(tmp_path / 'w')])
    assert 'exceed the 77-token context with n_ctx=45' in line
    assert long_name in line and "'cat'" not in line


def test_ctx_init_longer_than_n_ctx(tmp_path, clip_path, capsys):
    config = write(tmp_path, clip_path, dict(cat=2, dog=2),
                   model=", n_ctx=4, ctx_init='a photo of a small'")
    line = one_line_error(capsys, TRAIN.main,
                          [config, '--work-dir', str(tmp_path / 'w')])
    assert "ctx_init 'a photo of a small' is 5 tokens, more than n_ctx=4" \
        in line


def test_learned_file_of_another_architecture(tmp_path, clip_path, capsys):
    from mmengine.config import Config

    from mmprompt.models.prompt_learning import save_learned
    config = write(tmp_path, clip_path, dict(cat=2, dog=2),
                   model=', n_ctx=4')
    model = MODELS.build(
        dict(Config.fromfile(config).model, categories=['cat', 'dog']))
    model.init_weights()
    learned = str(tmp_path / 'learned.pth')
    save_learned(model, learned)
    # The same config over a CLIP with a narrower joint space.
    other = tmp_path / 'other'
    other.mkdir()
    other_config = write(other, None, dict(cat=2, dog=2), model=', n_ctx=4',
                         clip=clip_cfg(proj_dims=16))
    line = one_line_error(
        capsys, TEST.main,
        [other_config, learned, '--work-dir',
         str(tmp_path / 'w'), '--no-progress'])
    assert 'learned on a CLIP of another architecture' in line


def test_missing_data_folder_shows_the_layout(tmp_path, clip_path, capsys):
    """A zoo config name (mmprompt::) with no data folder: one line with
    the expected layout and the --cfg-options key that moves it, which
    works as printed."""
    nowhere = tmp_path / 'nowhere'
    line = one_line_error(capsys, TRAIN.main, [
        'mmprompt::coop/coop_vit-base-p16_16shots_custom.py', '--work-dir',
        str(tmp_path / 'work'), '--cfg-options',
        f'train_dataloader.dataset.dataset.data_root={nowhere}'
    ])
    assert line == (
        f'error: no image folder at {nowhere}/train: your own images go in '
        'data/custom/{train,val,test}/<class>/*.jpg, a folder per class '
        '(another root: --cfg-options '
        'train_dataloader.dataset.dataset.data_root=DIR)')
    line = one_line_error(capsys, TEST.main, [
        'mmprompt::clip/clip_vit-base-p16_zeroshot-cls_custom.py',
        clip_path, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options',
        f'test_dataloader.dataset.data_root={nowhere}'
    ])
    assert line == (
        f'error: no image folder at {nowhere}/test: your own images go in '
        'data/custom/{train,val,test}/<class>/*.jpg, a folder per class '
        '(another root: --cfg-options test_dataloader.dataset.data_root=DIR)')
