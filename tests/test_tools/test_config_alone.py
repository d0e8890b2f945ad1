# Copyright (c) mmprompt contributors. All rights reserved.
"""A config alone describes a run (issue #19): what ``tools/train.py``
learns and ``tools/test.py`` measures, ``RUNNERS.build(Config.fromfile(
cfg))`` (MMPreTrain's tools' ``Runner.from_cfg`` for a config with a
``runner_type``) learns and measures too, bit for bit, given the options
the tools were given (work dir, checkpoint as ``load_from``, precision);
the few-shot draw, the categories and Tip-Adapter-F's cache size come from
the data, the hooks from the schedule and the config's keys."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmcv import imwrite
from mmengine.config import Config
from mmengine.model import is_model_wrapper
from testing_utils import REPO_ROOT, load_module
from testing_utils import clip as H

from mmprompt.engine import PrecisionHook, PrepareZeroShotHook

from mmprompt.registry import MODELS, RUNNERS
from mmprompt.utils import register_all_modules
from mmprompt.utils.checkpoint import read_checkpoint, save_checkpoint

TRAIN = load_module('_mmprompt_tools_train_alone',
                    osp.join(REPO_ROOT, 'tools', 'train.py'))
TEST = load_module('_mmprompt_tools_test_alone',
                   osp.join(REPO_ROOT, 'tools', 'test.py'))
CLASSES = ('cat', 'dog', 'fox')


def clip_cfg() -> dict:
    from test_models.test_prompt_learning import clip_cfg as cfg
    return cfg(tiny=True)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """Four random images per class and a tiny random CLIP checkpoint."""
    root = tmp_path_factory.mktemp('alone')
    rng = np.random.default_rng(0)
    for name in CLASSES:
        for i in range(4):
            imwrite(rng.integers(0, 256, (40, 36, 3), np.uint8),
                    str(root / 'data' / 'train' / name / f'{i}.png'))
    torch.manual_seed(7)
    clip = MODELS.build(clip_cfg())
    clip_path = str(root / 'clip.pth')
    save_checkpoint(clip.state_dict(), {}, clip_path)
    return root, clip_path


def write_config(folder, root, clip_path, leaf: str, extra: str,
                 **model) -> str:
    cfg = dict(clip_cfg(), init_cfg=dict(type='Pretrained',
                                         checkpoint=clip_path))
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='RandomResizedCrop', scale=32, backend='pillow'),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='PackInputs')
    ]
    path = folder / osp.basename(leaf)
    path.write_text(f"""_base_ = [{osp.join(REPO_ROOT, 'configs', leaf)!r}]
model = dict(clip=dict(_delete_=True, **{cfg!r}), **{model!r})
train_dataloader = dict(batch_size=2, num_workers=0, dataset=dict(shots=2,
    dataset=dict(data_root={str(root / 'data')!r}, pipeline={pipeline!r})))
param_scheduler = []
train_cfg = dict(max_epochs=2)
default_hooks = dict(checkpoint=dict(interval=100))
{extra}""")
    return str(path)


def runner_of(config: str, work_dir: str, **options):
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(config)
    cfg.work_dir = work_dir
    cfg.merge_from_dict(options)
    return RUNNERS.build(cfg)


def evaluate_both(config: str, checkpoint: str, tmp_path, *argv: str,
                  **options) -> tuple:
    """The metrics of tools/test.py and of the Runner built from the config
    with the checkpoint as ``load_from`` (and ``options``), and the
    Runner."""
    metrics = TEST.main([
        config, checkpoint, '--work-dir',
        str(tmp_path / 'test_tool'), '--no-progress', *argv
    ])
    runner = runner_of(config, str(tmp_path / 'test_runner'),
                       load_from=checkpoint, **options)
    again = {k: float(v) for k, v in runner.test().items()}
    return metrics, again, runner


def run_both(config: str, tmp_path):
    """The learned file of tools/train.py, and the model of the Runner
    built from the config with the same work-dir option."""
    learned = TRAIN.main([config, '--work-dir', str(tmp_path / 'tool')])
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(config)
    cfg.work_dir = str(tmp_path / 'runner')
    runner = RUNNERS.build(cfg)
    runner.train()
    model = runner.model
    model = model.module if is_model_wrapper(model) else model
    return read_checkpoint(learned)[0], model


def test_coop_config_alone_learns_what_the_tool_learns(setup, tmp_path):
    root, clip_path = setup
    config = write_config(tmp_path, root, clip_path,
                          'coop/coop_vit-base-p16_16shots_custom.py',
                          "optim_wrapper = dict(optimizer=dict(lr=0.1))\n",
                          n_ctx=4)
    learned, model = run_both(config, tmp_path)
    assert model.trained_categories == list(CLASSES)
    ctx = model.prompt_learner.ctx.detach()
    assert ctx.shape == (4, 64)
    assert torch.equal(learned['prompt_learner.ctx'], ctx)
    # Trained: not the seeded start.
    assert float(ctx.abs().sum()) > 0
    assert osp.isfile(tmp_path / 'runner' / 'few_shot_2shots_seed1_all.json')
    # Evaluated: the learned file as load_from, its categories the trained
    # ones, the training images as the test set.
    opts = {
        'test_dataloader.dataset.data_root': str(root / 'data'),
        'test_dataloader.dataset.data_prefix': 'train',
        'test_dataloader.num_workers': 0
    }
    metrics, again, _ = evaluate_both(
        config, str(tmp_path / 'tool' / 'learned.pth'), tmp_path,
        '--cfg-options', *[f'{k}={v}' for k, v in opts.items()], **opts)
    assert metrics == again and sorted(metrics) == [
        'accuracy/top1', 'accuracy/top3', 'mean_per_class_recall'
    ]


def test_zero_shot_config_alone_measures_what_the_tool_measures(tmp_path):
    data = tmp_path / 'custom'
    rng = np.random.default_rng(1)
    for name in CLASSES:
        for i in range(2):
            imwrite(rng.integers(0, 256, (40, 36, 3), np.uint8),
                    str(data / 'test' / name / f'{i}.png'))
    config = H.write_tiny_config(
        str(tmp_path / 'cfg.py'),
        'clip/clip_vit-base-p16_zeroshot-cls_custom.py',
        model=dict(templates='simple'),
        extra=f'test_dataloader = dict(num_workers=0, dataset=dict('
        f'data_root={str(data)!r}))\n')
    ckpt = H.write_converted_checkpoint(str(tmp_path / 'tiny.pth'))
    metrics, again, runner = evaluate_both(
        config, ckpt, tmp_path, '--precision', 'bf16', precision='bf16')
    assert metrics == again
    assert sorted(metrics) == [
        'accuracy/top1', 'accuracy/top3', 'mean_per_class_recall'
    ]
    # The hooks the tool's options and the config ask for.
    assert [type(h) for h in runner.hooks
            if isinstance(h, (PrecisionHook, PrepareZeroShotHook))] == [
                PrecisionHook, PrepareZeroShotHook
            ]


def test_tip_adapter_config_alone_learns_what_the_tool_learns(
        setup, tmp_path):
    root, clip_path = setup
    val = [dict(type='LoadImageFromFile'),
           dict(type='Resize', scale=32), dict(type='PackInputs')]
    config = write_config(
        tmp_path, root, clip_path,
        'tip_adapter/tip-adapter-f_vit-base-p16_16shots_custom.py',
        f"""val_dataloader = dict(num_workers=0, dataset=dict(dataset=dict(
    data_root={str(root / 'data')!r}, pipeline={val!r})))
optim_wrapper = dict(optimizer=dict(lr=0.01))
train_cfg = dict(val_interval=2)
custom_hooks = [dict(type='TipAdapterHook', augment_epochs=1,
                     search_step=(8, 4))]
""")
    learned, model = run_both(config, tmp_path)
    # The cache size is the training draw's: 2 shots of 3 classes.
    assert learned['cache_keys'].shape == (6, 32)
    for key in ('cache_keys', 'cache_labels', 'alpha', 'beta'):
        assert torch.equal(learned[key], getattr(model, key).detach()), key
    assert sorted(learned['cache_labels'].tolist()) == [0, 0, 1, 1, 2, 2]
