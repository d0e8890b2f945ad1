# Copyright (c) mmprompt contributors. All rights reserved.
"""Importing mmprompt silences mmcv-lite's one import warning, no other."""
import subprocess
import sys

from testing_utils import REPO_ROOT

SCRIPT = r'''
import warnings
import mmprompt
import mmprompt.models  # imports MMPreTrain, hence mmcv.cnn.bricks
from mmprompt.utils import register_all_modules
register_all_modules()
import mmcv.cnn.bricks.transformer
# The same text from another module, and another mmcv warning, still show.
warnings.warn('Fail to import ``MultiScaleDeformableAttention`` (ours)')
warnings.warn_explicit('another mmcv warning', UserWarning,
                       'transformer.py', 1,
                       module='mmcv.cnn.bricks.transformer')
'''


def test_mmcv_lite_warning_silenced_and_nothing_else():
    out = subprocess.run([sys.executable, '-W', 'default', '-c', SCRIPT],
                         cwd=REPO_ROOT,
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if 'Warning' in line]
    assert not any('mmcv-lite' in line or 'mmcv.ops' in line
                   for line in out.stderr.splitlines()), out.stderr
    assert any('(ours)' in line for line in lines), out.stderr
    assert any('another mmcv warning' in line for line in lines), out.stderr
