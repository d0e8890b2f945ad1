# Copyright (c) mmprompt contributors. All rights reserved.
"""Issue 22, quiet by default: a one-line error comes after at most a few
lines (not MMEngine's environment and config dump), ``--help`` needs no
torch, and a checkpoint is found under either extension."""
import glob
import os
import os.path as osp
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from test_tools.test_prompt_learning_errors import (  # noqa: F401
    clip_cfg, clip_path)
from test_tools.test_prompt_learning_errors import write as write_coop
from testing_utils import REPO_ROOT
from testing_utils import clip as H

from mmprompt.utils.checkpoint import (find_checkpoint, load_checkpoint,
                                       read_checkpoint, save_checkpoint)
from mmprompt.utils.errors import CheckpointError

#: Every tool with a --help, relative to the repository: every script of
#: tools/misc/ and tools/model_converters/ too.
TOOLS = ('tools/test.py', 'tools/train.py', 'tools/infer.py',
         'tools/calibrate_thresholds.py', 'tools/deployment/pytorch2onnx.py',
         'demo/classify.py', *sorted(
             osp.relpath(path, REPO_ROOT)
             for folder in ('misc', 'model_converters')
             for path in glob.glob(osp.join(REPO_ROOT, 'tools', folder,
                                            '*.py'))))
#: Lines a tool may print before its one-line error.
MAX_LINES_BEFORE = 5

# Runs a tool as __main__ and reports, after its exit, whether torch was
# imported.
HELP_PROBE = '''
import runpy, sys
sys.argv = [sys.argv[1], '--help']
try:
    runpy.run_path(sys.argv[0], run_name='__main__')
except SystemExit as e:
    assert e.code in (0, None), e.code
sys.stderr.write('torch imported: %s\\n' % ('torch' in sys.modules))
'''


def run(argv, cwd=REPO_ROOT) -> subprocess.CompletedProcess:
    """``python argv...`` with this checkout first on the path, stdout
    and stderr interleaved as a user sees them."""
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, *argv],
                          cwd=cwd,
                          env=env,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True,
                          timeout=300)


def lines_before_error(result: subprocess.CompletedProcess) -> list:
    """The lines printed before the last, which must be the one-line
    error (exit status 2, no traceback)."""
    lines = result.stdout.rstrip('\n').splitlines()
    assert result.returncode == 2, result.stdout[-3000:]
    assert lines[-1].startswith('error: '), result.stdout[-3000:]
    assert 'Traceback' not in result.stdout
    return lines[:-1]


@pytest.mark.parametrize('tool', TOOLS)
def test_help_is_fast_and_needs_no_torch(tool):
    """``--help`` imports neither torch nor the models (measured 0.2-1.1 s
    on 2 busy cores, see docs/benchmarks.md; the bound is generous)."""
    start = time.perf_counter()
    result = run(['-c', HELP_PROBE, osp.join(REPO_ROOT, tool)])
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stdout[-3000:]
    assert result.stdout.startswith('usage: ')
    assert result.stdout.rstrip().endswith('torch imported: False')
    assert seconds < 10, seconds


def test_import_of_the_api_needs_no_torch():
    result = run([
        '-c', 'import sys, mmprompt, mmprompt.apis; '
        "print('torch' in sys.modules, mmprompt.apis.list_models()[0], "
        "'torch' in sys.modules)"
    ])
    assert result.stdout.split() == ['False', 'clip_vit-base-p16',
                                     'True'], result.stdout


@pytest.fixture(scope='module')
def in1k(tmp_path_factory) -> dict:
    """A tiny zero-shot ImageNet config, its checkpoint and one image."""
    root = tmp_path_factory.mktemp('quiet')
    (root / 'imagenet' / 'val').mkdir(parents=True)
    (root / 'imagenet' / 'meta').mkdir()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(
        root / 'imagenet' / 'val' / '0.JPEG')
    (root / 'imagenet' / 'meta' / 'val.txt').write_text('0.JPEG 0\n')
    config = H.write_tiny_config(
        str(root / 'cfg.py'),
        'clip/clip_vit-base-p16_zeroshot-cls_in1k.py',
        model=dict(templates='simple'))
    ckpt = H.write_converted_checkpoint(str(root / 'tiny.pth'))
    return dict(root=root, config=config, ckpt=ckpt)


def test_test_py_error_after_the_runner_starts(in1k, tmp_path):
    """The dataset fails once the Runner is built: the environment dump
    (with ``GPU number``) is not printed, unless --verbose."""
    argv = [
        osp.join(REPO_ROOT, 'tools', 'test.py'), in1k['config'], in1k['ckpt'],
        '--work-dir',
        str(tmp_path / 'w'), '--no-progress', '--cfg-options',
        f"test_dataloader.dataset.data_root={tmp_path / 'nowhere'}"
    ]
    result = run(argv)
    before = lines_before_error(result)
    assert len(before) <= MAX_LINES_BEFORE, before
    assert 'the test dataset cannot be read' in result.stdout
    assert 'GPU number' not in result.stdout
    verbose = run([*argv, '--verbose'])
    assert 'System environment:' in verbose.stdout
    assert 'GPU number' in verbose.stdout


def test_train_py_error_after_the_runner_starts(tmp_path, clip_path):  # noqa
    """A mistyped model key fails while the Runner builds the model, after
    MMEngine would have logged its environment and config."""
    config = write_coop(tmp_path, clip_path, dict(cat=2, dog=2),
                        ', n_ctxx=4')
    result = run([
        osp.join(REPO_ROOT, 'tools', 'train.py'), config, '--work-dir',
        str(tmp_path / 'w')
    ])
    before = lines_before_error(result)
    assert len(before) <= MAX_LINES_BEFORE, before
    assert result.stdout.splitlines()[-1].endswith(
        "model.n_ctxx is not a setting of CoOp; did you mean 'n_ctx'?")


@pytest.mark.parametrize('argv', [
    ['tools/infer.py', 'tag', 'nowhere/', '--model', 'no-such-model',
     '--out', 'x.jsonl'],
    ['tools/calibrate_thresholds.py', 'no.py', 'no.pth', 'x.pth'],
    ['tools/deployment/pytorch2onnx.py', 'no-such-model', 'x.onnx'],
    ['demo/classify.py', 'no.jpg', '--model', 'no-such-model'],
], ids=lambda a: a[0])
def test_other_tools_few_lines_before_the_error(argv, tmp_path):
    result = run([osp.join(REPO_ROOT, argv[0]), *argv[1:]], cwd=tmp_path)
    before = lines_before_error(result)
    assert len(before) <= MAX_LINES_BEFORE, before
    assert os.listdir(tmp_path) == []


def test_a_checkpoint_is_found_under_the_other_extension(tmp_path):
    """``checkpoints/x.pth`` finds ``x.safetensors`` (and the reverse),
    in the loaders and in tools/test.py; neither file: one line naming
    the path asked for."""
    from mmprompt.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(clip_cfg())
    (tmp_path / 'checkpoints').mkdir()
    real = str(tmp_path / 'checkpoints' / 'x.safetensors')
    save_checkpoint(model.state_dict(), {'a': 1}, real)
    asked = str(tmp_path / 'checkpoints' / 'x.pth')
    assert find_checkpoint(asked) == real
    assert find_checkpoint(real) == real
    sd, meta = read_checkpoint(asked)
    assert meta == {'a': 1} and set(sd) == set(model.state_dict())
    load_checkpoint(model, asked)
    from mmengine.runner.checkpoint import CheckpointLoader
    loaded = CheckpointLoader.load_checkpoint(asked)
    assert set(loaded['state_dict']) == set(model.state_dict())
    from test_tools.test_test_py_errors import TOOL
    assert TOOL.resolve_checkpoint(asked) == real
    os.rename(real, asked)
    assert find_checkpoint(real) == asked
    missing = str(tmp_path / 'checkpoints' / 'y.pth')
    with pytest.raises(CheckpointError) as e:
        find_checkpoint(missing)
    assert str(e.value) == f'{missing}: no such checkpoint file'


def test_test_py_caches_prototypes_by_default(in1k, tmp_path, monkeypatch):
    """A zero-shot run caches its prototypes under $MMPROMPT_HOME; the
    next run reads them and builds none."""
    from test_tools.test_test_py_errors import TOOL

    from mmprompt.models.clip import CLIPZeroShot
    home = tmp_path / 'home'
    monkeypatch.setenv('MMPROMPT_HOME', str(home))
    argv = [
        in1k['config'], in1k['ckpt'], '--work-dir',
        str(tmp_path / 'w'), '--no-progress', '--cfg-options',
        f"test_dataloader.dataset.data_root={in1k['root'] / 'imagenet'}"
    ]
    first = TOOL.main(argv)
    cached = os.listdir(home / 'prototypes')
    assert len(cached) == 1 and cached[0].endswith('.pth')

    def refuse(*args, **kwargs):
        raise AssertionError('prototypes built again')

    monkeypatch.setattr(CLIPZeroShot, 'build_prototypes', refuse)
    assert TOOL.main(argv) == first


def test_prototype_build_time_is_estimated(monkeypatch):
    """Before a large build, the time of a 64-prompt probe, scaled."""
    from types import SimpleNamespace

    from test_models.test_clip import build_tiny

    from mmprompt.models.clip import prototype_cache
    model = build_tiny()
    names = [f'class {i}' for i in range(100)]
    templates = [f'{{}} number {i}' for i in range(50)]
    estimate = prototype_cache.estimate_build_time
    assert estimate(model, names, templates, 4095) == ''
    for prompts, expected in ((5000, ', about 39 s'),
                              (80000, ', about 10 min')):
        # The probe takes 0.5 s for its 64 prompts.
        clock = iter([10.0, 10.5])
        monkeypatch.setattr(prototype_cache, 'time',
                            SimpleNamespace(perf_counter=lambda: next(clock)))
        assert estimate(model, names, templates, prompts) == expected


def test_runner_uses_no_more_workers_than_cores(tmp_path):
    """The configs' 4 DataLoader workers on a 2-core machine: the Runner
    the tools build lowers them to the cores (issue #22)."""
    import os

    from PIL import Image
    (tmp_path / 'cat').mkdir()
    Image.new('RGB', (4, 4)).save(tmp_path / 'cat' / '0.png')

    from mmprompt.engine.runner import QuietRunner
    from mmprompt.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cores = os.cpu_count() or 1
    loader = QuietRunner.build_dataloader(
        dict(
            batch_size=2,
            num_workers=cores + 3,
            dataset=dict(type='mmpretrain.CustomDataset',
                         data_root=str(tmp_path), lazy_init=True,
                         pipeline=[]),
            sampler=dict(type='DefaultSampler', shuffle=False)))
    assert loader.num_workers == cores


def test_loading_a_text_tower_logs_no_parameter_list(tmp_path, capsys):
    """An open set's text tower loaded from its init_cfg outside a Runner
    (no log file): MMEngine printed one entry per parameter, about 600
    lines for CLIP ViT-B/16's; now the load line alone."""
    from mmengine.logging import MMLogger
    from testing_utils import ram as R

    from mmprompt.registry import MODELS
    from mmprompt.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    MMLogger.get_instance(f'quiet_{tmp_path.name}')  # no file handler
    text = R.save_text_encoder(str(tmp_path / 'text.pth'))
    tower = MODELS.build(R.tiny_text_encoder(text))
    capsys.readouterr()
    tower.init_weights()
    out = capsys.readouterr()
    lines = (out.out + out.err).strip().splitlines()
    assert len(lines) <= 3, lines
    assert not any('positional_embedding' in line for line in lines)
