# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/test.py runs a PE-Core zero-shot leaf config (shrunk) with a
converted checkpoint: planted examples score 100%."""
import os.path as osp

import pytest
import torch
from test_models.test_pe_core import TinyReference, randomize_
from test_tools.test_test_py import run_tool, write_imagenet_folder
from testing_utils import REPO_ROOT

from mmprompt.converters import convert_pe_core

LEAF = osp.join(REPO_ROOT, 'configs', 'pe_core',
                'pe-core_vit-base-p16_zeroshot-cls_in1k.py')


def test_in1k_leaf_with_planted_examples(tmp_path):
    pytest.importorskip('open_clip')
    pytest.importorskip('timm')
    from mmprompt.models.clip.prompts import resolve_categories
    ref = randomize_(TinyReference(), seed=0, std=0.1)
    converted, meta = convert_pe_core(ref.state_dict())
    checkpoint = str(tmp_path / 'tiny_pe.pth')
    torch.save(dict(state_dict=converted, meta=meta), checkpoint)
    names = resolve_categories('imagenet')
    labels = [0, 1, 2, 417, 999, 0, 1, 2]
    root = tmp_path / 'imagenet'
    files = write_imagenet_folder(root, labels)
    examples = {}
    for path, label in zip(files, labels):
        examples.setdefault(names[label], []).append(str(path))
    model = dict(
        vision_backbone=dict(
            arch=dict(
                _delete_=True,
                embed_dims=64,
                num_layers=2,
                num_heads=2,
                feedforward_channels=256),
            img_size=32,
            patch_size=16,
            rope_ref_grid=(2, 2),
            attn_pool_cfg=dict(num_heads=2)),
        text_backbone=dict(embed_dims=64, num_layers=2, num_heads=2),
        proj_dims=48,
        templates='simple',
        examples=examples,
        cache_alpha=1000.0,
        cache_beta=2000.0)
    pipeline = [
        dict(
            type='CLIPPreprocess',
            scale=32,
            resize_mode='squash',
            interpolation='bilinear'),
        dict(type='PackInputs')
    ]
    config = tmp_path / 'cfg.py'
    config.write_text(f'_base_ = [{LEAF!r}]\nmodel = dict(**{model!r})\n'
                      'test_dataloader = dict(num_workers=0, batch_size=4, '
                      f'dataset=dict(pipeline={pipeline!r}))\n')
    metrics, result = run_tool(tmp_path, str(config), checkpoint,
                               f'test_dataloader.dataset.data_root={root}')
    assert result['num_samples'] == len(labels)
    assert metrics == {
        'accuracy/top1': 100.0,
        'accuracy/top5': 100.0,
        'mean_per_class_recall': 100.0
    }
