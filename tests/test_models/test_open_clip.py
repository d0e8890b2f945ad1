# Copyright (c) mmprompt contributors. All rights reserved.
"""open_clip's CLIP ViTs (LAION-2B, DataComp-1B, DFN, MetaCLIP) in mmprompt:
configs, converter, preprocessing and parity with open_clip 3.x."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmpretrain.models.utils import QuickGELU
from PIL import Image

from mmprompt.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO_ROOT, 'configs', '_base_', 'models')

# Our base config, open_clip's model name, its pretrained tag; the
# activation, side and resize mode the config must give.
ZOO = [
    ('clip_vit-huge-p14_laion2b', 'ViT-H-14', 'laion2b_s32b_b79k'),
    ('clip_vit-gigantic-p14_laion2b', 'ViT-bigG-14', 'laion2b_s39b_b160k'),
    ('clip_vit-large-p14_datacomp-xl', 'ViT-L-14', 'datacomp_xl_s13b_b90k'),
    ('clip_vit-large-p14_dfn2b', 'ViT-L-14-quickgelu', 'dfn2b'),
    ('clip_vit-huge-p14_dfn5b', 'ViT-H-14-quickgelu', 'dfn5b'),
    ('clip_vit-huge-p14_dfn5b-378px', 'ViT-H-14-378-quickgelu', 'dfn5b'),
    ('clip_vit-large-p14_metaclip-2.5b', 'ViT-L-14-quickgelu',
     'metaclip_fullcc'),
    ('clip_vit-huge-p14_metaclip-2.5b', 'ViT-H-14-quickgelu',
     'metaclip_fullcc'),
]


def model_cfg(name: str) -> dict:
    return copy.deepcopy(
        Config.fromfile(osp.join(CONFIGS, f'{name}.py')).model)


def build_meta(name: str) -> nn.Module:
    """Our model of a config, shapes only (no memory, no init time)."""
    with torch.device('meta'):
        return MODELS.build(model_cfg(name))


def open_clip_meta(open_clip, arch: str) -> nn.Module:
    """open_clip's model of ``arch``, shapes only."""
    with torch.device('meta'):
        return open_clip.model.CLIP(**open_clip.get_model_config(arch))


@pytest.mark.parametrize('config,arch,tag', ZOO, ids=[z[0] for z in ZOO])
def test_configs_follow_open_clip(config, arch, tag):
    """Each config has open_clip's activation in both towers, its input side
    and the resize mode and interpolation of the weights' pretrained cfg,
    and as many parameters as open_clip's model."""
    open_clip = pytest.importorskip('open_clip')
    model = build_meta(config)
    ref = open_clip_meta(open_clip, arch)
    oc_cfg = open_clip.get_model_config(arch)
    act = QuickGELU if oc_cfg.get('quick_gelu') else nn.GELU
    assert type(model.text_encoder.resblocks[0].mlp.gelu) is act
    assert type(model.visual.layers[0].ffn.layers[0][1]) is act
    pretrained = open_clip.get_pretrained_cfg(arch, tag)
    assert model.preprocess_args == dict(
        scale=oc_cfg['vision_cfg']['image_size'],
        resize_mode=pretrained['resize_mode'],
        interpolation=pretrained['interpolation'])
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in ref.parameters())


def test_text_tower_activation_from_config():
    """act_cfg picks the text tower's activation; QuickGELU by default."""
    from mmprompt.models.clip.text_encoder import CLIPTextTransformer
    cfg = dict(embed_dims=16, num_layers=1, num_heads=2, out_dims=8)
    default = CLIPTextTransformer(**cfg).resblocks[0].mlp.gelu
    gelu = CLIPTextTransformer(
        **cfg, act_cfg=dict(type='GELU')).resblocks[0].mlp.gelu
    assert type(default) is QuickGELU
    assert type(gelu) is nn.GELU and gelu.approximate == 'none'


def test_image_preprocess_is_checked():
    cfg = model_cfg('clip_vit-huge-p14_dfn5b')
    cfg.update(image_preprocess=dict(resize_mode='longest'))
    with pytest.raises(ValueError, match="resize_mode must be one of"):
        with torch.device('meta'):
            MODELS.build(cfg)
    cfg.update(image_preprocess=dict(size=3))
    with pytest.raises(ValueError, match=r"takes \['interpolation', "):
        with torch.device('meta'):
            MODELS.build(cfg)


# ---------------------------------------------------------- preprocessing --


def _images():
    """PIL images of several shapes and modes, photo-like."""
    rng = np.random.default_rng(0)

    def photo(h, w):
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        img = np.stack([
            128 + 90 * np.sin(x / (7 + 4 * c) + c) * np.cos(y / (11 + c))
            for c in range(3)
        ], -1) + rng.normal(0, 15, (h, w, 3))
        return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))

    rgba = photo(300, 260).convert('RGBA')
    rgba.putalpha(Image.fromarray(
        rng.integers(0, 256, (300, 260), dtype=np.uint8)))
    return {
        'landscape': photo(480, 640),
        'tall': photo(1001, 223),
        'gray': photo(333, 251).convert('L'),
        'rgba': rgba,
        'palette': photo(250, 397).quantize(colors=64),
    }


@pytest.mark.parametrize('config,arch,tag', ZOO, ids=[z[0] for z in ZOO])
def test_preprocessing_matches_open_clip(config, arch, tag):
    """The model's own pipeline (CLIPPreprocess with its preprocess_args,
    then its data preprocessor) gives the tensor of open_clip's
    ``image_transform`` for the weights' pretrained cfg: resize mode,
    interpolation, mean and std."""
    open_clip = pytest.importorskip('open_clip')
    from mmcv.transforms import Compose
    pretrained = open_clip.get_pretrained_cfg(arch, tag)
    size = open_clip.get_model_config(arch)['vision_cfg']['image_size']
    theirs = open_clip.image_transform(
        size,
        is_train=False,
        mean=pretrained['mean'],
        std=pretrained['std'],
        resize_mode=pretrained['resize_mode'],
        interpolation=pretrained['interpolation'])
    model = build_meta(config)
    pipeline = Compose([
        dict(type='CLIPPreprocess', **model.preprocess_args),
        dict(type='PackInputs')
    ])
    data_preprocessor = MODELS.build(model_cfg(config).data_preprocessor)
    diffs = {}
    for name, image in _images().items():
        packed = pipeline(dict(img=image))
        got = data_preprocessor(
            dict(inputs=[packed['inputs']],
                 data_samples=[packed['data_samples']]))['inputs'][0]
        want = theirs(image)
        assert got.shape == want.shape == (3, size, size)
        diffs[name] = (got - want).abs().max().item()
    assert max(diffs.values()) < 1e-5, diffs


def test_squash_is_not_a_crop():
    """DFN's squash keeps the whole image: a left-half-red image stays half
    red, where OpenAI's centre crop of a wide image shows less red."""
    from mmprompt.datasets import CLIPPreprocess
    image = np.zeros((100, 300, 3), np.uint8)
    image[:, :150, 0] = 255
    red = {}
    for mode in ('squash', 'shortest'):
        out = CLIPPreprocess(
            scale=50, resize_mode=mode, array_order='rgb')(dict(img=image))
        red[mode] = float((out['img'][..., 2] > 127).mean())  # BGR
    assert red['squash'] == pytest.approx(0.5, abs=0.03)
    assert red['shortest'] == pytest.approx(0.5, abs=0.03)  # centred edge
    image[:, :100, 0], image[:, 100:, 0] = 255, 0
    out = CLIPPreprocess(
        scale=50, resize_mode='squash', array_order='rgb')(dict(img=image))
    crop = CLIPPreprocess(scale=50, array_order='rgb')(dict(img=image))
    assert float((out['img'][..., 2] > 127).mean()) == pytest.approx(
        1 / 3, abs=0.03)
    assert float((crop['img'][..., 2] > 127).mean()) == 0.0


def test_zoo_configs_pipelines_follow_the_model():
    """The test pipeline of every open_clip leaf config preprocesses as the
    model's image_preprocess says (tools/test.py reads the pipeline,
    ZeroShotClassifier and tools/infer.py the model)."""
    import glob
    leaves = sorted(
        glob.glob(osp.join(REPO_ROOT, 'configs', 'open_clip', '*.py')))
    assert len(leaves) == 16
    for path in leaves:
        cfg = Config.fromfile(path)
        with torch.device('meta'):
            model = MODELS.build(copy.deepcopy(cfg.model))
        step = cfg.test_dataloader.dataset.pipeline[0]
        args = dict(resize_mode='shortest', interpolation='bicubic')
        args.update({k: v for k, v in step.items() if k in args})
        assert step['type'] == 'CLIPPreprocess', path
        assert dict(scale=step['scale'], **args) == \
            model.preprocess_args, path
