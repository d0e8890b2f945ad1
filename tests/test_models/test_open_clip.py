# Copyright (c) mmprompt contributors. All rights reserved.
"""open_clip's CLIP ViTs (LAION-2B, DataComp-1B, DFN, MetaCLIP) in mmprompt:
configs, converter, preprocessing and parity with open_clip 3.x."""
import copy
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmpretrain.models.utils import QuickGELU

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
