# Copyright (c) mmprompt contributors. All rights reserved.
"""Tiny RAM / RAM++ checkpoints and configs for the tagging API, CLI and
evaluation tests (``from testing_utils import ram``).

The checkpoints are the reference's tiny state dicts of
``shared/ram/vectors`` converted by ``tools/model_converters/
ram_to_mmprompt.py``; the configs are the real ones shrunk to them.
"""
import json
import os.path as osp
from typing import Optional

import torch

from testing_utils import load_module

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO_ROOT, 'configs')
IMAGES = ('img0_rgb_320x240.png', 'img1_gray_500x300.png')

# Swin 12 wide with RAM-L's stage resolutions, a 64-wide tagging head: the
# shapes of the tiny reference vectors.
TINY_MODEL = dict(
    visual_encoder=dict(
        arch=dict(
            _delete_=True,
            embed_dims=12,
            depths=[2, 2, 2, 2],
            num_heads=[1, 2, 4, 8])),
    tagging_head=dict(embed_dims=64, feedforward_channels=128))
# A small CLIP text tower for the open-set models (random weights).
TINY_TEXT = dict(
    type='CLIPTextTransformer',
    vocab_size=49408,
    context_length=77,
    embed_dims=32,
    num_layers=2,
    num_heads=4,
    out_dims=512)


def expected(vectors_dir: str, name: str = 'ram') -> dict:
    """The tiny model's JSON (tags, thresholds) and reference targets."""
    with open(osp.join(vectors_dir, f'{name}_tiny_expected.json')) as f:
        meta = json.load(f)
    tensors = torch.load(
        osp.join(vectors_dir, f'{name}_tiny_expected.pth'),
        map_location='cpu',
        weights_only=True)
    meta['targets'] = tensors['targets']
    meta['probs'] = tensors['probs']
    return meta


def write_lines(path: str, lines) -> str:
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(str(x) for x in lines) + '\n')
    return path


def convert_tiny(vectors_dir: str, root: str, name: str = 'ram') -> str:
    """Convert the tiny reference checkpoint with our converter CLI."""
    cli = load_module(
        '_mmprompt_ram_to_mmprompt',
        osp.join(REPO_ROOT, 'tools', 'model_converters', 'ram_to_mmprompt.py'))
    meta = expected(vectors_dir, name)
    dst = osp.join(root, f'{name}_tiny_mmprompt.pth')
    args = [
        osp.join(vectors_dir,
                 f'{name}_tiny_state_dict.pth'), dst, '--tag-list',
        write_lines(osp.join(root, f'{name}_tags.txt'),
                    meta['tags_en']), '--tag-list-chinese',
        write_lines(osp.join(root, f'{name}_tags_zh.txt'),
                    meta['tags_zh']), '--thresholds',
        write_lines(osp.join(root, f'{name}_thr.txt'), meta['thresholds']),
        '--force'
    ]
    assert cli.main(args) == 0
    return dst


def write_tiny_config(path: str,
                      base: str,
                      num_classes: int,
                      extra: str = '',
                      **model) -> str:
    """A config file: ``configs/<base>`` with the model shrunk to the tiny
    vectors, model overrides and extra config text."""
    overrides = dict(TINY_MODEL, num_classes=num_classes, **model)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(f'_base_ = [{osp.join(CONFIGS, base)!r}]\n'
                f'model = {overrides!r}\n{extra}')
    return path


def save_text_encoder(path: str, seed: int = 0) -> str:
    """Random weights of TINY_TEXT, saved under ``text_encoder.``."""
    from mmprompt.registry import MODELS
    torch.manual_seed(seed)
    encoder = MODELS.build(dict(TINY_TEXT))
    state = {f'text_encoder.{k}': v for k, v in encoder.state_dict().items()}
    torch.save(dict(state_dict=state), path)
    return path


def tiny_text_encoder(checkpoint: Optional[str] = None) -> dict:
    """TINY_TEXT, initialised from ``checkpoint`` if given."""
    cfg = dict(TINY_TEXT)
    if checkpoint:
        cfg['init_cfg'] = dict(
            type='Pretrained', checkpoint=checkpoint, prefix='text_encoder.')
    return cfg
