# Copyright (c) mmprompt contributors. All rights reserved.
import pytest
import torch
import torch.nn as nn
from torch.testing import assert_close

from mmprompt.models.utils import AttentionPool
from mmprompt.registry import MODELS


def _timm_pool(**kwargs) -> nn.Module:
    layers = pytest.importorskip('timm.layers')
    return layers.AttentionPoolLatent(**kwargs)


@pytest.mark.parametrize('latent_len,qk_norm,approximate', [
    (1, False, 'none'),
    (2, True, 'tanh'),
])
def test_attention_pool_matches_timm(latent_len, qk_norm, approximate):
    """Same keys and shapes as timm's AttentionPoolLatent; same output for
    the same weights (fp32), with LN eps 1e-6 and either GELU."""
    from functools import partial
    torch.manual_seed(0)
    ref = _timm_pool(
        in_features=48, num_heads=4, mlp_ratio=3.7362, latent_len=latent_len,
        qk_norm=qk_norm, norm_layer=partial(nn.LayerNorm, eps=1e-6),
        act_layer=partial(nn.GELU, approximate=approximate)).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0, 0.3)
    ours = MODELS.build(
        dict(type='AttentionPool', in_features=48, num_heads=4,
             mlp_ratio=3.7362, latent_len=latent_len, qk_norm=qk_norm,
             act_cfg=dict(type='GELU', approximate=approximate))).eval()
    assert isinstance(ours, AttentionPool)
    ref_sd = ref.state_dict()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in ref_sd.items()}
    assert ours.mlp.fc1.out_features == int(48 * 3.7362) == 179
    ours.load_state_dict(ref_sd, strict=True)
    x = torch.randn(3, 10, 48)
    with torch.no_grad():
        out = ours(x)
    assert out.shape == (3, 48)
    assert_close(out, ref(x), atol=1e-6, rtol=0)
    # The first latent's output only: the other latents do not change it.
    if latent_len > 1:
        with torch.no_grad():
            ours.latent[:, 1:].add_(1.0)
            assert_close(ours(x), out, atol=1e-6, rtol=0)


def test_attention_pool_rejects_bad_heads():
    with pytest.raises(ValueError, match='embed_dim 48 is not divisible by '
                       'num_heads 5'):
        AttentionPool(48, num_heads=5)
