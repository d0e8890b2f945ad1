# Copyright (c) mmprompt contributors. All rights reserved.
"""A wheel (``pip install .``, not ``-e``) carries the configs and tools."""
import os
import os.path as osp
import shutil
import subprocess
import sys
import zipfile

import pytest
from testing_utils import REPO_ROOT

# What .gitignore keeps out of a checkout (CI's .venv included).
SKIP = shutil.ignore_patterns('.git', '.venv', '.whl', '__pycache__', '*.pyc',
                              '*.egg-info', 'build', 'dist', '.mim',
                              'artifacts', '.pytest_cache', '.hypothesis',
                              'work_dirs')


@pytest.mark.slow
def test_wheel_ships_configs_and_tools(tmp_path):
    src = tmp_path / 'src'
    shutil.copytree(REPO_ROOT, src, ignore=SKIP)
    subprocess.run([
        sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
        '--no-build-isolation', '-w',
        str(tmp_path / 'dist'),
        str(src)
    ],
                   check=True,
                   capture_output=True)
    wheel, = (tmp_path / 'dist').glob('mmprompt-*.whl')
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in z.infolist()}
        z.extractall(tmp_path / 'site')
    for name in os.listdir(osp.join(REPO_ROOT, 'configs', 'ram')):
        assert f'mmprompt/.mim/configs/ram/{name}' in names
    assert 'mmprompt/.mim/configs/_base_/default_runtime.py' in names
    assert 'mmprompt/.mim/tools/test.py' in names
    assert 'mmprompt/.mim/model-index.yml' in names
    assert 'mmprompt/.mim/configs/ram/metafile.yml' in names
    assert 'mmprompt/.mim/configs/pe_core/metafile.yml' in names
    assert 'mmprompt/.mim/tools/model_converters/pe_core_to_mmprompt.py' in \
        names
    assert 'mmprompt/models/clip/bpe_simple_vocab_16e6.txt.gz' in names
    # The launchers, executable as in the checkout.
    assert sorted(n for n in names if n.endswith('.sh')) == [
        f'mmprompt/.mim/tools/{script}'
        for script in ('dist_test.sh', 'dist_train.sh', 'slurm_test.sh',
                       'slurm_train.sh')
    ]
    assert all(modes[n] & 0o111 for n in names if n.endswith('.sh'))
    assert not any(n.startswith(('tests/', 'configs/')) for n in names)

    # The installed package finds its configs without a checkout.
    code = ('import mmprompt, os.path as osp\n'
            'from mmprompt.apis.hub import get_configs_dir\n'
            'from mmengine.config import Config\n'
            'd = get_configs_dir()\n'
            'cfg = Config.fromfile(osp.join(d, "clip", '
            '"clip_vit-base-p16_zeroshot-cls_cifar100.py"))\n'
            'print(mmprompt.__file__)\n'
            'print(d)\n'
            'print(cfg.model.type)\n'
            'from mmprompt.apis import list_models, model_zoo\n'
            'print(len(list_models()))\n'
            'print(model_zoo.load_config("mmprompt::clip/'
            'clip_vit-base-p16_zeroshot-cls_in1k.py")[0].model.type)\n'
            'print(model_zoo.get_model_info("clip_vit-base-p16").config)\n')
    env = dict(os.environ, PYTHONPATH=str(tmp_path / 'site'))
    out = subprocess.run([sys.executable, '-c', code],
                         cwd=tmp_path,
                         env=env,
                         check=True,
                         capture_output=True,
                         text=True).stdout.split('\n')
    site = str(tmp_path / 'site')
    assert out[0].startswith(site), out
    assert out[1] == osp.join(site, 'mmprompt', '.mim', 'configs')
    assert out[2] == 'CLIPZeroShot'
    # The zoo table (all of the checkout's) and mmprompt:: config names,
    # from the wheel.
    from mmprompt.apis import list_models
    assert out[3] == str(len(list_models()))
    assert out[4] == 'CLIPZeroShot'
    assert out[5] == osp.join(site, 'mmprompt', '.mim', 'configs', '_base_',
                              'models', 'clip_vit-base-p16.py')
