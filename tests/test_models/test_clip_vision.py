# Copyright (c) mmprompt contributors. All rights reserved.
"""CLIPVisionTransformer: the last block at the class token only."""
import pytest
import torch
from mmpretrain.models import VisionTransformer
from torch.testing import assert_close

from mmprompt.models.clip import CLIPVisionTransformer

# OpenAI's layout (configs/_base_/models/clip_vit-base-p16.py), tiny.
TINY = dict(
    arch=dict(embed_dims=64, num_layers=3, num_heads=2,
              feedforward_channels=256),
    img_size=32, patch_size=8, pre_norm=True,
    norm_cfg=dict(type='LN', eps=1e-5),
    layer_cfgs=dict(act_cfg=dict(type='mmpretrain.QuickGELU')),
    final_norm=True, out_type='cls_token')


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """N(0, 0.02) weights, LayerNorm scales 1 + N(0, 0.1); eval mode."""
    g = torch.Generator().manual_seed(seed)
    scales = {
        id(m.weight)
        for m in model.modules() if isinstance(m, torch.nn.LayerNorm)
    }
    with torch.no_grad():
        for p in model.parameters():
            noise = torch.randn(p.shape, generator=g)
            p.copy_(1 + 0.1 * noise if id(p) in scales else 0.02 * noise)
    model.eval()
    return model


def plain(tower: VisionTransformer, images: torch.Tensor) -> tuple:
    """MMPreTrain's own forward: every token through every block."""
    return VisionTransformer.forward(tower, images)


def test_last_block_runs_the_class_token_only():
    tower = randomize_(CLIPVisionTransformer(**TINY))
    images = torch.randn(3, 3, 32, 32,
                         generator=torch.Generator().manual_seed(1))
    rows = []
    tower.layers[-1].ffn.register_forward_hook(
        lambda m, args, out: rows.append(tuple(args[0].shape)))
    tower.layers[0].ffn.register_forward_hook(
        lambda m, args, out: rows.append(tuple(args[0].shape)))
    with torch.no_grad():
        out = tower(images)
        assert rows == [(3, 17, 64), (3, 1, 64)]
        expected = plain(tower, images)
    assert len(out) == 1 and out[0].shape == (3, 64)
    assert_close(out[0], expected[0], atol=1e-6, rtol=0)
    assert expected[0].std() > 0.1


@pytest.mark.parametrize('kwargs', [
    dict(out_type='featmap'),
    dict(out_indices=[1, 2]),
    dict(out_type='raw'),
])
def test_other_outputs_take_mmpretrains_path(kwargs):
    tower = randomize_(CLIPVisionTransformer(**dict(TINY, **kwargs)))
    images = torch.randn(2, 3, 32, 32,
                         generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out, expected = tower(images), plain(tower, images)
    assert len(out) == len(expected)
    for a, b in zip(out, expected):
        assert torch.equal(a, b)


@pytest.mark.parity
@pytest.mark.slow
def test_class_token_block_is_exact_at_vit_huge():
    """Full size (open_clip's ViT-H/14: 32 x 1280, 257 tokens), random
    weights: the pooled feature within 1e-5 of MMPreTrain's plain forward.
    The same tower against open_clip's ``encode_image`` is
    test_open_clip.py::test_parity_with_open_clip[ViT-H-14]."""
    torch.manual_seed(0)
    with torch.device('meta'):
        tower = CLIPVisionTransformer(**dict(
            TINY, arch='huge', img_size=224, patch_size=14,
            layer_cfgs=dict(act_cfg=dict(type='GELU'))))
    tower.to_empty(device='cpu')
    randomize_(tower)
    images = torch.randn(1, 3, 224, 224,
                         generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = tower(images)[0]
        expected = plain(tower, images)[0]
    print(f'\nViT-H class token: max abs diff '
          f'{(out - expected).abs().max().item():.1e}')
    assert_close(out, expected, atol=1e-5, rtol=0)
    assert expected.std() > 0.1
