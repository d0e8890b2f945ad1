# Copyright (c) mmprompt contributors. All rights reserved.
"""PE-Core: the RoPE tables and a tiny model (attention pool included) against
timm's ``Eva`` and open_clip's text tower (references built in the tests),
the tokenizer at context 32, and full-size parity with open_clip's
``PE-Core-B-16`` and ``PE-Core-L-14-336``."""
import copy
import gc
import os.path as osp
from functools import partial

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from torch.testing import assert_close

from mmprompt.converters import convert_pe_core
from mmprompt.models.clip import CLIPTokenizer, CLIPZeroShot
from mmprompt.models.pe_core import PEVisionTransformer, rope_2d
from mmprompt.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO_ROOT, 'configs', '_base_', 'models')
LOGIT_SCALE = 4.2
PROMPTS = [
    'a photo of a cat.',
    'A sculpture of a tiny red rocket standing on a launchpad, at dusk!',
    'the plastic zebra, 3 times',
]
# Width 64 in 2 heads of 32 (RoPE needs head_dims % 4 == 0), 2 layers,
# 32 px images in 16 px patches, a 48-wide joint space.
TINY = dict(width=64, heads=2, layers=2, img=32, patch=16, embed=48)


def model_cfg(name: str) -> dict:
    return copy.deepcopy(
        Config.fromfile(osp.join(CONFIGS, f'{name}.py')).model)


def randomize_(model: nn.Module,
               seed: int = 0,
               std: float = 0.02) -> nn.Module:
    """N(0, std) weights and biases, LayerNorm scales 1 + N(0, 0.1), a
    non-default logit scale: every parameter non-degenerate."""
    g = torch.Generator().manual_seed(seed)
    norm_scales = {
        id(m.weight)
        for m in model.modules() if isinstance(m, nn.LayerNorm)
    }
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name == 'logit_scale':
                p.fill_(LOGIT_SCALE)
            elif id(p) in norm_scales:
                p.copy_(1 + 0.1 * noise)
            else:
                p.copy_(std * noise)
    return model


def tiny_cfg() -> dict:
    cfg = model_cfg('pe-core_vit-base-p16')
    w = TINY['width']
    cfg.vision_backbone.update(
        arch=dict(
            embed_dims=w,
            num_layers=TINY['layers'],
            num_heads=TINY['heads'],
            feedforward_channels=4 * w),
        img_size=TINY['img'],
        patch_size=TINY['patch'],
        rope_ref_grid=(2, 2),
        attn_pool_cfg=dict(num_heads=TINY['heads'], mlp_ratio=4.0))
    cfg.text_backbone.update(
        embed_dims=w, num_layers=TINY['layers'], num_heads=TINY['heads'])
    cfg.update(proj_dims=TINY['embed'])
    return cfg


class TinyReference(nn.Module):
    """PE-Core as open_clip builds it (``CustomTextCLIP``: timm's ``Eva``
    under ``visual.trunk``, ``TextTransformer`` under ``text``), tiny."""

    def __init__(self) -> None:
        super().__init__()
        from open_clip.transformer import TextTransformer
        from timm.layers import LayerNorm
        from timm.models.eva import Eva
        w = TINY['width']
        self.visual = nn.Module()
        self.visual.trunk = Eva(
            img_size=TINY['img'],
            patch_size=TINY['patch'],
            num_classes=TINY['embed'],
            global_pool='map',
            embed_dim=w,
            depth=TINY['layers'],
            num_heads=TINY['heads'],
            attn_type='rope',
            use_pre_transformer_norm=True,
            use_rot_pos_emb=True,
            ref_feat_shape=(2, 2),
            rope_grid_offset=1.,
            rope_grid_indexing='xy',
            attn_pool_num_heads=TINY['heads'],
            attn_pool_mlp_ratio=4.,
            norm_layer=partial(LayerNorm, eps=1e-5))
        self.text = TextTransformer(
            context_length=32,
            width=w,
            heads=TINY['heads'],
            layers=TINY['layers'],
            output_dim=TINY['embed'])
        self.logit_scale = nn.Parameter(torch.tensor(0.))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.visual.trunk(images)

    def encode_text(self, texts: torch.Tensor) -> torch.Tensor:
        return self.text(texts)


@pytest.fixture(scope='module')
def tiny_pair():
    pytest.importorskip('open_clip')
    pytest.importorskip('timm')
    ref = randomize_(TinyReference(), seed=0, std=0.1).eval()
    converted, meta = convert_pe_core(ref.state_dict())
    model = MODELS.build(tiny_cfg()).eval()
    model.load_state_dict(converted, strict=True)
    return ref, model, meta


@pytest.fixture(scope='module')
def tokenizer():
    return CLIPTokenizer()


# ---------------------------------------------------------------- pieces --


@pytest.mark.parametrize('grid,ref_grid', [((14, 14), (14, 14)),
                                           ((24, 24), (24, 24)),
                                           ((3, 5), (14, 14))])
def test_rope_tables_are_timms(grid, ref_grid):
    from timm.layers.pos_embed_sincos import RotaryEmbeddingCat
    timm_rope = RotaryEmbeddingCat(
        dim=64,
        in_pixels=False,
        feat_shape=list(grid),
        ref_feat_shape=list(ref_grid),
        grid_offset=1.,
        grid_indexing='xy')
    sin, cos = rope_2d(grid, 64, ref_grid)
    assert sin.shape == (grid[0] * grid[1], 64)
    assert torch.equal(torch.cat([sin, cos], dim=-1), timm_rope.get_embed())


def test_rope_rotates_channel_pairs():
    # One frequency band per axis: head_dims 4. The patch at row 0, column
    # 1 of a 1 x 2 grid sits at x = 2, y = 1 (offset 1).
    sin, cos = rope_2d((1, 2), 4)
    assert_close(sin[1], torch.tensor([2., 2., 1., 1.]).sin())
    assert_close(cos[1], torch.tensor([2., 2., 1., 1.]).cos())


def test_tower_out_types_and_arguments():
    cfg = tiny_cfg().vision_backbone
    cfg.pop('type')
    images = torch.randn(2, 3, 32, 32)
    raw = PEVisionTransformer(**dict(cfg, out_type='raw'))
    assert raw.attn_pool is None
    assert raw(images)[0].shape == (2, 5, 64)
    featmap = PEVisionTransformer(**dict(cfg, out_type='featmap'))
    assert featmap(images)[0].shape == (2, 64, 2, 2)
    with pytest.raises(ValueError, match='out_type must be one of'):
        PEVisionTransformer(**dict(cfg, out_type='cls_token'))
    with pytest.raises(ValueError, match='arch must be one of'):
        PEVisionTransformer(arch='huge')
    # No RoPE table or mask is ever in a checkpoint.
    assert not any('rope' in k for k in raw.state_dict())


def test_clip_refuses_an_unpooled_tower():
    cfg = tiny_cfg()
    cfg.vision_backbone.update(out_type='raw')
    with pytest.raises(ValueError, match="got 'raw'"):
        MODELS.build(cfg)


def test_tiny_model_matches_timm_and_open_clip(tiny_pair):
    ref, model, meta = tiny_pair
    assert type(model) is CLIPZeroShot
    assert meta['arch'] == dict(
        vision_width=64,
        vision_layers=2,
        patch_size=16,
        image_size=32,
        embed_dim=48,
        text_width=64,
        text_layers=2,
        context_length=32,
        vocab_size=49408)
    images = torch.randn(
        2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    texts = CLIPTokenizer()(PROMPTS, context_length=32)
    with torch.no_grad():
        ref_image, ref_text = ref.encode_image(images), ref.encode_text(texts)
        image = model.extract_image_feat(images)
        text = model.extract_text_feat(texts)
        # Rows cut after the longest prompt give the same features.
        longest = int(texts.argmax(dim=-1).max()) + 1
        text_short = model.extract_text_feat(texts[:, :longest])
    assert ref_image.abs().max() > 0.1 and ref_text.abs().max() > 0.1
    assert_close(image, ref_image, atol=1e-6, rtol=0)
    assert_close(text, ref_text, atol=1e-6, rtol=0)
    assert_close(text_short, ref_text, atol=1e-6, rtol=0)


def test_text_tower_uses_gelu(tiny_pair):
    _, model, _ = tiny_pair
    assert type(model.text_encoder.resblocks[0].mlp.gelu) is nn.GELU
    assert model.visual_proj.bias is not None


# ------------------------------------------------------------- tokenizer --


def test_tokenizer_ids_at_context_32_are_open_clips(tokenizer):
    open_clip = pytest.importorskip('open_clip')
    theirs = open_clip.get_tokenizer('PE-Core-B-16')
    assert theirs.context_length == 32
    long_text = ' '.join(['a very long caption about a red rocket'] * 8)
    texts = PROMPTS + [long_text, '', 'Ünïcödé &amp; HTML  spaces']
    ours = tokenizer(texts, context_length=32, truncate=True)
    expected = theirs(texts)
    assert ours.shape == (6, 32)
    assert torch.equal(ours, expected)
    # The long caption is cut to 32 ids, the last one end-of-text.
    assert ours[3, -1] == tokenizer.eot_token_id
    assert (ours[3] != 0).all()
    with pytest.raises(ValueError, match='context length 32'):
        tokenizer([long_text], context_length=32)


# ---------------------------------------------------------------- parity --


@pytest.mark.parity
@pytest.mark.slow
@pytest.mark.parametrize('arch,config', [
    ('PE-Core-B-16', 'pe-core_vit-base-p16'),
    ('PE-Core-L-14-336', 'pe-core_vit-large-p14-336px'),
])
def test_parity_with_open_clip(arch, config, tokenizer):
    """Random fp32 weights in the released layout (open_clip's
    ``state_dict``), through our converter: image and text features within
    1e-5 after normalisation, logits within 1e-4."""
    open_clip = pytest.importorskip('open_clip')
    pytest.importorskip('timm')
    torch.manual_seed(0)
    ref = randomize_(open_clip.create_model(arch, pretrained=None), seed=0)
    ref.eval()
    num_params = sum(p.numel() for p in ref.parameters())
    size = ref.visual.image_size
    images = torch.randn(
        2, 3, *size, generator=torch.Generator().manual_seed(2))
    texts = open_clip.get_tokenizer(arch)(PROMPTS)
    assert torch.equal(tokenizer(PROMPTS, context_length=32), texts)
    with torch.no_grad():
        ref_image = ref.encode_image(images)
        ref_text = ref.encode_text(texts)
        # What open_clip's get_logits computes, without a second forward.
        ref_logits = ref.logit_scale.exp() * F.normalize(
            ref_image, dim=-1) @ F.normalize(
                ref_text, dim=-1).t()
    converted, meta = convert_pe_core(ref.state_dict())
    del ref
    gc.collect()
    model = MODELS.build(model_cfg(config)).eval()
    assert sum(p.numel() for p in model.parameters()) == num_params
    model.load_state_dict(converted, strict=True)
    del converted
    gc.collect()
    assert meta['dropped'] == []
    with torch.no_grad():
        image = model.extract_image_feat(images)
        text = model.extract_text_feat(texts)
        logits = model.compute_logits(images, texts)
    assert ref_image.abs().max() > 0.1 and ref_text.abs().max() > 0.1
    assert_close(
        F.normalize(image, dim=-1),
        F.normalize(ref_image, dim=-1),
        atol=1e-5,
        rtol=0)
    assert_close(
        F.normalize(text, dim=-1),
        F.normalize(ref_text, dim=-1),
        atol=1e-5,
        rtol=0)
    assert_close(logits, ref_logits, atol=1e-4, rtol=0)
    assert logits.abs().max() > 0.5  # exp(4.2) ~ 67 times the cosine
