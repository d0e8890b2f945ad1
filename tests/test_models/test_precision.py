# Copyright (c) mmprompt contributors. All rights reserved.
"""fp16 / bf16 inference paths, checked for correctness on the CPU."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpretrain.models.backbones import SwinTransformer

from mmprompt.models.utils import apply_precision, enable_sdpa
from mmprompt.registry import MODELS

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.dirname(__file__))),
                   'configs')


def _randomize(model: torch.nn.Module, std: float = 0.02) -> None:
    gen = torch.Generator().manual_seed(0)
    for name, param in model.named_parameters():
        noise = torch.randn(param.shape, generator=gen)
        if param.dim() > 1:
            param.data.copy_(noise * std)
        elif 'norm' in name or 'ln' in name:
            base = 1. if name.endswith('weight') else 0.
            param.data.copy_(base + noise * 0.1)
        else:
            param.data.copy_(noise * std)


def test_sdpa_window_attention_matches_mmpretrain():
    torch.manual_seed(0)
    swin = SwinTransformer(
        arch=dict(embed_dims=24, depths=[2, 2, 2, 2], num_heads=[1, 2, 3, 4]),
        img_size=384,
        window_size=12)
    _randomize(swin, std=0.3)
    for name, param in swin.named_parameters():
        if 'relative_position_bias_table' in name:
            param.data.normal_(0, 1)
    swin.eval()
    # Two images: the shifted windows fold windows into heads per image.
    x = torch.randn(2, 3, 384, 384)
    with torch.no_grad():
        expected = swin(x)[0]
        assert enable_sdpa(swin) == 8
        assert enable_sdpa(swin) == 0  # already switched
        got = swin(x)[0]
        torch.testing.assert_close(
            swin(x[1:])[0], expected[1:], atol=1e-5, rtol=0)
    kinds = [type(m).__name__ for m in swin.modules()]
    assert kinds.count('SDPAWindowMSA') == 8 and 'WindowMSA' not in kinds
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    # The state dict is untouched: same keys as a fresh backbone.
    assert set(swin.state_dict()) == set(
        SwinTransformer(
            arch=dict(
                embed_dims=24, depths=[2, 2, 2, 2], num_heads=[1, 2, 3, 4]),
            img_size=384,
            window_size=12).state_dict())


@pytest.fixture(scope='module')
def clip_b32():
    cfg = Config.fromfile(
        osp.join(CONFIGS, '_base_/models/clip_vit-base-p32.py'))
    model = MODELS.build(cfg.model)
    _randomize(model)
    model.logit_scale.data.fill_(4.6)
    return model.eval()


@pytest.fixture(scope='module')
def tiny_clip():
    from testing_utils import clip as clip_testing
    cfg = Config.fromfile(
        osp.join(CONFIGS, '_base_/models/clip_vit-base-p32.py'))
    cfg.merge_from_dict(dict(model=clip_testing.tiny_model_overrides()))
    model = MODELS.build(cfg.model)
    _randomize(model)
    model.logit_scale.data.fill_(4.6)
    return model.eval()


# What stays fp32 after apply_precision: the projections, the text tower's
# embeddings and final LayerNorm, the logit scale.
FP32_PARAMS = ('visual_proj.', 'text_encoder.text_projection',
               'text_encoder.token_embedding.', 'text_encoder.ln_final.',
               'text_encoder.positional_embedding', 'logit_scale')


def test_bf16_casts_towers_and_keeps_projections_fp32(tiny_clip):
    """Every parameter's dtype after apply_precision('bf16'): the image
    tower and the text blocks bf16, the projections and the logit scale
    fp32; features are fp32 and close to fp32's."""
    model = apply_precision(copy.deepcopy(tiny_clip), 'bf16')
    assert model.low_precision_modules == ('visual', 'text_encoder.resblocks')
    for name, param in model.named_parameters():
        if name.startswith(FP32_PARAMS):
            assert param.dtype == torch.float32, name
        else:
            assert name.startswith(('visual.', 'text_encoder.resblocks.'))
            assert param.dtype == torch.bfloat16, name
    torch.manual_seed(0)
    images = torch.randn(2, 3, 64, 64)
    texts = model.tokenize(['a photo of a cat.', 'a dog'])
    with torch.no_grad():
        img, ref_img = (m.extract_image_feat(images)
                        for m in (model, tiny_clip))
        txt, ref_txt = (m.extract_text_feat(texts)
                        for m in (model, tiny_clip))
        # The shared-prefix path runs the blocks in bf16 as well.
        enc = model.text_encoder
        embeds = enc.token_embedding(texts)
        prefix = enc.encode_prefix(embeds[:, :1])
        eot = texts.argmax(-1) - 1
        cached = enc.forward_embeddings(embeds[:, 1:], eot, prefix)
    for got, ref in ((img, ref_img), (txt, ref_txt), (cached, ref_txt)):
        assert got.dtype == torch.float32
        diff = (got - ref).abs().max().item()
        # bf16 arithmetic: close to fp32, but not equal.
        assert 0 < diff < 0.05 * ref.abs().max().item(), diff
    model.set_categories(['cat', 'dog'], templates=['a photo of a {}.'])
    assert model.get_prototypes().dtype == torch.float32


def test_fp32_is_a_no_op(clip_b32):
    model = copy.deepcopy(clip_b32)
    apply_precision(model, 'fp32')
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(
            model.extract_image_feat(images),
            clip_b32.extract_image_feat(images),
            atol=0,
            rtol=0)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_bad_precision_and_double_cast(clip_b32):
    model = copy.deepcopy(clip_b32)
    with pytest.raises(ValueError, match="one of.*'bf16'.*got 'fp8'"):
        apply_precision(model, 'fp8')
    apply_precision(model, 'bf16')
    with pytest.raises(RuntimeError, match='already cast'):
        apply_precision(model, 'fp16')


@pytest.mark.parity
@pytest.mark.slow
def test_bf16_top1_agrees_with_fp32(clip_b32):
    """Full-size ViT-B/32, CIFAR-100's categories: bf16 top-1 == fp32 top-1
    on at least 31 of 32 images, with the towers cast once and the decision
    (projection, prototypes, softmax) kept in fp32. (32 images: bf16 on a
    CPU without bf16 matrix units runs about 7x slower than fp32; 200
    images took 14 minutes of a CI run.)"""
    from mmpretrain.datasets.categories import CIFAR100_CATEGORIES
    torch.manual_seed(1)
    images = torch.randn(32, 3, 224, 224)
    categories = [c.replace('_', ' ') for c in CIFAR100_CATEGORIES]
    fp32 = copy.deepcopy(clip_b32)
    fp32.set_categories(categories)
    low = apply_precision(copy.deepcopy(clip_b32), 'bf16')
    assert low.visual.cls_token.dtype == torch.bfloat16
    assert low.text_encoder.resblocks[0].mlp.c_fc.weight.dtype == \
        torch.bfloat16
    assert low.text_encoder.text_projection.dtype == torch.float32
    low.set_categories(categories)
    with torch.no_grad():
        ref = fp32.predict(images)
        got = low.predict(images)
        feats = low.extract_image_feat(images)
    assert feats.dtype == torch.float32
    assert low.get_prototypes().dtype == torch.float32
    ref_labels = torch.cat([d.pred_label for d in ref])
    got_labels = torch.cat([d.pred_label for d in got])
    agreement = (ref_labels == got_labels).float().mean().item()
    # Measured: 32 of 32 (and at least 198 of 200 with 200 images).
    assert agreement >= 31 / 32, agreement
    ref_scores = torch.stack([d.pred_score for d in ref])
    got_scores = torch.stack([d.pred_score for d in got])
    # Measured: 7.7e-3 (1.2e-2 over 200 images) on probabilities that reach
    # 1.3e-2; a broken cast
    # (e.g. bf16 prototypes or softmax) is far off.
    assert (ref_scores - got_scores).abs().max() < 3e-2


def test_autocast_strategy_keeps_fp32_weights(clip_b32):
    model = apply_precision(
        copy.deepcopy(clip_b32), 'bf16', strategy='autocast')
    assert all(p.dtype == torch.float32 for p in model.parameters())
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        feats = model.extract_image_feat(images)
        ref = clip_b32.extract_image_feat(images)
    assert feats.dtype == torch.float32
    # bf16 arithmetic: close to fp32, but not equal.
    diff = (feats - ref).abs().max().item()
    assert 0 < diff < 0.1 * ref.abs().max().item()
    with pytest.raises(ValueError, match="strategy must be 'cast'"):
        apply_precision(copy.deepcopy(clip_b32), 'bf16', strategy='amp')
