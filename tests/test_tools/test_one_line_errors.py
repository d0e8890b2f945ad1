# Copyright (c) mmprompt contributors. All rights reserved.
"""Issue 18, section 6: every tool answers bad input with one line
(``error: ...`` on stderr, exit status 2, no traceback) and writes
nothing."""
import pytest
import os

import torch
from test_tools.test_prompt_learning_errors import (TEST, TRAIN, clip_cfg,
                                                    one_line_error)
from test_tools.test_prompt_learning_errors import write as write_coop


@pytest.fixture(scope='module')
def clip_path(tmp_path_factory) -> str:
    """A tiny random-weight CLIP checkpoint."""
    from mmprompt.registry import MODELS
    from mmprompt.utils.checkpoint import save_checkpoint
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp('clip') / 'clip.pth')
    save_checkpoint(MODELS.build(clip_cfg()).state_dict(), {}, path)
    return path


def write(tmp_path, clip_path, counts, model='') -> str:
    """A CoOp config of its own name: Runners made in the same second share
    MMEngine's visualiser when their configs share a name."""
    config = write_coop(tmp_path, clip_path, counts, model)
    named = str(tmp_path / f'coop_{tmp_path.name}.py')
    os.rename(config, named)
    return named


@pytest.fixture(autouse=True)
def _logger_outside_capsys():
    """MMEngine's logger keeps the stream it was made with: make it before
    capsys swaps stderr."""
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance()


@pytest.mark.parametrize('main', [TRAIN.main, TEST.main],
                         ids=['train', 'test'])
def test_missing_and_unparsable_configs(main, tmp_path, clip_path, capsys):
    """The same line from tools/train.py and tools/test.py."""
    extra = [] if main is TRAIN.main else [clip_path]
    missing = str(tmp_path / 'missing.py')
    line = one_line_error(capsys, main, [missing, *extra])
    assert line == f'error: {missing}: no such config file'
    broken = tmp_path / 'broken.py'
    broken.write_text('model = dict(\n')
    line = one_line_error(capsys, main, [str(broken), *extra])
    assert line.startswith(f'error: {broken}: cannot be read (SyntaxError: ')
    assert line.endswith('at line 1)')


def test_train_mistyped_keys(tmp_path, clip_path, capsys):
    """A key no constructor takes is named with its path and the nearest
    argument; a missing top-level key with the nearest key present; a
    ``type`` no registry holds with the nearest registered name."""
    config = write(tmp_path, clip_path, dict(cat=2, dog=2),
                   model=', n_ctxx=4')
    work = ['--work-dir', str(tmp_path / 'w')]
    line = one_line_error(capsys, TRAIN.main, [config, *work])
    assert line == (f"error: {config}: model.n_ctxx is not a setting of "
                    "CoOp; did you mean 'n_ctx'?")
    config = write(tmp_path / 'b', clip_path, dict(cat=2, dog=2))
    line = one_line_error(capsys, TRAIN.main, [
        config, *work, '--cfg-options',
        'train_dataloader.dataset.shotss=2'])
    assert line == (f'error: {config}: train_dataloader.dataset.shotss is '
                    "not a setting of FewShotDataset; did you mean "
                    "'shots'?")
    line = one_line_error(capsys, TRAIN.main, [
        config, *work, '--cfg-options', 'model.type=CoOpp'])
    assert line == (f"error: {config}: type 'CoOpp' is not a registered "
                    "model; did you mean 'CoOp'?")
    renamed = tmp_path / 'renamed.py'
    renamed.write_text("model = dict(type='CoOp')\ntrain_dataloder = {}\n"
                       'train_cfg = {}\noptim_wrapper = {}\n')
    line = one_line_error(capsys, TRAIN.main, [str(renamed), *work])
    assert line == (f"error: {renamed}: no 'train_dataloader' in the config; "
                    "did you mean 'train_dataloder'?")
    assert not (tmp_path / 'w' / 'learned.pth').exists()


def test_test_mistyped_key(tmp_path, clip_path, capsys):
    config = write(tmp_path, clip_path, dict(cat=2, dog=2),
                   model=', n_ctx=4')
    line = one_line_error(capsys, TEST.main, [
        config, clip_path, '--work-dir', str(tmp_path / 'w'),
        '--cfg-options', 'model.clip.proj_dimz=8',
        'model.categories=[cat,dog]'])
    assert line == (f'error: {config}: model.clip.proj_dimz is not a '
                    "setting of CLIP; did you mean 'proj_dims'?")
