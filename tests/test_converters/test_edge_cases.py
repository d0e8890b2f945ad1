# Copyright (c) mmprompt contributors. All rights reserved.
"""Converter edge cases of issue 12, section 6: each was accepted or gave
a misleading message before."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from testing_utils import REPO_ROOT, load_module
from testing_utils import clip as clip_testing
from testing_utils import ram as ram_testing

CLIP_CLI = load_module(
    '_mmprompt_openai_clip_to_mmprompt',
    osp.join(REPO_ROOT, 'tools', 'model_converters',
             'openai_clip_to_mmprompt.py'))
RAM_CLI = load_module(
    '_mmprompt_ram_to_mmprompt',
    osp.join(REPO_ROOT, 'tools', 'model_converters', 'ram_to_mmprompt.py'))


@pytest.fixture(scope='module', autouse=True)
def _logger_outside_capsys():
    """MMEngine's logger keeps the stream it was made with: make it before
    capsys swaps stderr, so later tests do not log to a closed stream."""
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance()


@pytest.fixture(scope='module')
def clip_src(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('src') / 'openai.pth')
    torch.save(clip_testing.openai_state_dict(), path)
    return path


def test_ram_tag_lists_blank_or_repeated(ram_vectors_dir, tmp_path, capsys):
    src = osp.join(ram_vectors_dir, 'ram_tiny_state_dict.pth')
    blank = ram_testing.write_lines(str(tmp_path / 'blank.txt'), [''] * 20)
    dup = ram_testing.write_lines(str(tmp_path / 'dup.txt'), ['dup'] * 20)
    for tags, message in [(blank, 'blank.txt: line 1 is blank'),
                          (dup, "dup.txt: line 2 repeats the tag 'dup' of "
                           'line 1')]:
        dst = str(tmp_path / 'out.pth')
        assert RAM_CLI.main([src, dst, '--tag-list', tags]) == 2
        assert message in capsys.readouterr().err
        assert not osp.exists(dst)
    # Chinese names may repeat (RAM's own list does), never be blank.
    tags = ram_testing.write_lines(
        str(tmp_path / 'en.txt'), [f't{i}' for i in range(20)])
    zh = ram_testing.write_lines(str(tmp_path / 'zh.txt'), ['同'] * 20)
    assert RAM_CLI.main([
        src,
        str(tmp_path / 'ok.pth'), '--tag-list', tags, '--tag-list-chinese', zh
    ]) == 0


def test_output_paths(clip_src, tmp_path, capsys):
    link = tmp_path / 'link.pth'
    link.symlink_to(tmp_path / 'nowhere.pth')
    assert CLIP_CLI.main([clip_src, str(link)]) == 2
    assert '(a dangling symbolic link); pass --force' in capsys.readouterr(
    ).err
    assert osp.islink(link)
    assert CLIP_CLI.main([clip_src, str(tmp_path)]) == 2
    assert 'is a directory; give a file name' in capsys.readouterr().err
    assert CLIP_CLI.main([str(tmp_path), str(tmp_path / 'o.pth')]) == 2
    assert 'is a directory; give the checkpoint file' in \
        capsys.readouterr().err


def test_force_keeps_umask_mode_and_removes_stale_temps(clip_src, tmp_path):
    dst = tmp_path / 'clip.pth'
    old = os.umask(0o022)
    try:
        assert CLIP_CLI.main([clip_src, str(dst)]) == 0
        assert oct(os.stat(dst).st_mode & 0o777) == oct(0o644)
        # A temp file a killed run left behind (its pid is gone).
        proc = subprocess.Popen([sys.executable, '-c', 'pass'])
        proc.wait()
        stale = tmp_path / f'.clip.pth.{proc.pid}.tmp-mmprompt'
        stale.write_bytes(b'partial')
        assert CLIP_CLI.main([clip_src, str(dst), '--force']) == 0
    finally:
        os.umask(old)
    assert oct(os.stat(dst).st_mode & 0o777) == oct(0o644)
    assert sorted(os.listdir(tmp_path)) == ['clip.pth']
