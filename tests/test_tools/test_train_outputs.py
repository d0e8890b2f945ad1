# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/train.py checks its learned-prompt file by the one output rule
before training."""
import os
import os.path as osp

import pytest
from testing_utils import REPO_ROOT, load_module

from mmprompt.utils.errors import OutputPathError

TOOL = load_module('_mmprompt_tools_train_outputs',
                   osp.join(REPO_ROOT, 'tools', 'train.py'))


@pytest.fixture
def no_training(monkeypatch):
    """Only the work dir of the command line; training fails the test."""

    def merge_args(cfg, args):
        cfg.work_dir = args.work_dir
        return cfg

    def train(*args, **kwargs):
        raise AssertionError('training started before the refusal')

    monkeypatch.setattr(TOOL, 'merge_args', merge_args)
    # A one-line config: the keys training needs are another test's. The
    # tool imports these where it uses them (a fast --help).
    monkeypatch.setattr('mmprompt.utils.config.require_keys',
                        lambda *args: None)
    monkeypatch.setattr('mmprompt.utils.dist.setup_distributed', train)


def test_learned_file_checked_before_training(tmp_path, monkeypatch,
                                              no_training):
    config = tmp_path / 'coop.py'
    config.write_text("model = dict(type='CoOp')\n")
    work = tmp_path / 'work'
    work.mkdir()
    learned = work / TOOL.LEARNED
    learned.write_bytes(b'keep')
    with pytest.raises(OutputPathError) as info:
        TOOL.main([str(config), '--work-dir', str(work)])
    assert str(info.value) == (
        f'{learned}: exists; pass --force (or --resume) to overwrite it')
    assert learned.read_bytes() == b'keep'
    real_access = os.access
    monkeypatch.setattr(os, 'access', lambda p, m: osp.realpath(p) != str(work)
                        and real_access(p, m))  # as root, chmod cannot show it
    with pytest.raises(OutputPathError, match=f'{work} is not writable$'):
        TOOL.main([str(config), '--work-dir', str(work), '--force'])
    with pytest.raises(OutputPathError, match='coop.py is not a folder$'):
        TOOL.main([str(config), '--work-dir', str(config / 'w')])
