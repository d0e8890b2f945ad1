# Copyright (c) mmprompt contributors. All rights reserved.
"""PE-Core's zero-shot configs give open_clip's ``preprocess`` for PE-Core
(``resize_mode='squash'``, bilinear, mean and std 0.5) to 1e-6."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from PIL import Image
from test_datasets.test_transforms import make_images, photo_like

from mmprompt.datasets import CLIPPreprocess
from mmprompt.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO_ROOT, 'configs', 'pe_core')


def open_clip_preprocess(arch: str, size: int):
    """The preprocess open_clip gives with PE-Core's released weights."""
    open_clip = pytest.importorskip('open_clip')
    cfg = open_clip.get_pretrained_cfg(arch, 'meta')
    assert cfg['resize_mode'] == 'squash'
    return open_clip.image_transform(
        size,
        is_train=False,
        mean=cfg['mean'],
        std=cfg['std'],
        interpolation=cfg['interpolation'],
        resize_mode=cfg['resize_mode'])


def config_preprocess(name: str):
    """Our pipeline and data preprocessor, from a zero-shot config."""
    cfg = Config.fromfile(osp.join(CONFIGS, name))
    pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
    data_preprocessor = MODELS.build(cfg.model.data_preprocessor)

    def run(results: dict) -> torch.Tensor:
        packed = pipeline(results)
        out = data_preprocessor(
            dict(
                inputs=[packed['inputs']],
                data_samples=[packed['data_samples']]))
        return out['inputs'][0]

    return run


@pytest.mark.parametrize('arch,config,size', [
    ('PE-Core-B-16', 'pe-core_vit-base-p16_zeroshot-cls_in1k.py', 224),
    ('PE-Core-L-14-336', 'pe-core_vit-large-p14_zeroshot-cls_in1k-336px.py',
     336),
])
def test_files_match_open_clip(arch, config, size, tmp_path):
    theirs = open_clip_preprocess(arch, size)
    ours = config_preprocess(config)
    diffs = {}
    for path in make_images(tmp_path):
        want = theirs(Image.open(path))
        got = ours(dict(img_path=path))
        assert got.shape == want.shape == (3, size, size)
        diffs[osp.basename(path)] = (got - want).abs().max().item()
    assert max(diffs.values()) < 1e-6, diffs
    assert len(diffs) == 7


@pytest.mark.parametrize('arch,config,size', [
    ('PE-Core-B-16', 'pe-core_vit-base-p16_zeroshot-cls_cifar100.py', 224),
    ('PE-Core-L-14-336',
     'pe-core_vit-large-p14_zeroshot-cls_cifar100-336px.py', 336),
])
def test_cifar_arrays_match_open_clip(arch, config, size):
    rgb = photo_like(32, 32, 8)
    want = open_clip_preprocess(arch, size)(Image.fromarray(rgb))
    got = config_preprocess(config)(dict(img=rgb))
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_squash_is_not_the_openai_crop():
    # A wide image: squashing keeps both ends, cropping cuts them.
    rgb = np.zeros((20, 60, 3), np.uint8)
    rgb[:, :10] = 255
    squash = CLIPPreprocess(
        scale=20,
        array_order='rgb',
        resize_mode='squash',
        interpolation='bilinear')(dict(img=rgb))['img']
    crop = CLIPPreprocess(scale=20, array_order='rgb')(dict(img=rgb))['img']
    assert squash[:, 0].min() == 255 and crop[:, 0].max() == 0
    assert 'squash' in repr(CLIPPreprocess(resize_mode='squash'))
    with pytest.raises(ValueError, match='resize_mode must be one of'):
        CLIPPreprocess(resize_mode='longest')
    with pytest.raises(ValueError, match='interpolation must be one of'):
        CLIPPreprocess(interpolation='nearest')


def test_the_model_names_its_preprocessing(tmp_path):
    """The base config's ``image_preprocess`` is what ZeroShotClassifier
    and the leaves' pipelines use: open_clip's for PE-Core."""
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', '_base_', 'models',
                 'pe-core_vit-base-p16.py'))
    assert cfg.model.image_preprocess == dict(
        resize_mode='squash', interpolation='bilinear')
    leaf = Config.fromfile(
        osp.join(CONFIGS, 'pe-core_vit-base-p16_zeroshot-cls_in1k.py'))
    step = dict(leaf.test_dataloader.dataset.pipeline[0])
    assert step.pop('type') == 'CLIPPreprocess' and step.pop('scale') == 224
    assert step == cfg.model.image_preprocess
    from mmprompt.models.clip.clip import _check_image_preprocess
    with pytest.raises(ValueError, match="not \\['crop'\\]"):
        _check_image_preprocess(dict(crop=True))
    with pytest.raises(ValueError, match='resize_mode must be one of'):
        _check_image_preprocess(dict(resize_mode='longest'))
