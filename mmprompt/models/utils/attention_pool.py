# Copyright (c) mmprompt contributors. All rights reserved.
"""Attention pooling with a learned latent query (the "MAP" head of SigLIP
and PE-Core), as timm's ``AttentionPoolLatent`` (Apache-2.0), with its
parameter names."""
from collections import OrderedDict
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer

from mmprompt.registry import MODELS


@MODELS.register_module()
class AttentionPool(nn.Module):
    """``latent_len`` learned queries attend over the tokens; ``proj``, then
    ``x + mlp(norm(x))``; the first query's output is the pooled feature.

    Args:
        in_features (int): Width of the input tokens.
        out_features (int, optional): Width after ``proj``. Defaults to
            ``in_features``.
        embed_dim (int, optional): Attention width. Defaults to
            ``in_features``.
        num_heads (int): Number of attention heads. Defaults to 8.
        mlp_ratio (float): Hidden width of the MLP over ``out_features``.
            Defaults to 4.0.
        qkv_bias (bool): Bias in ``q`` and ``kv``. Defaults to True.
        qk_norm (bool): Norm queries and keys per head. Defaults to False.
        latent_len (int): Number of learned queries. Defaults to 1.
        norm_cfg (dict): Config of ``norm`` (and of the qk norms).
            Defaults to ``dict(type='LN', eps=1e-6)``.
        act_cfg (dict): MLP activation. Defaults to ``dict(type='GELU')``.
    """

    def __init__(self,
                 in_features: int,
                 out_features: Optional[int] = None,
                 embed_dim: Optional[int] = None,
                 num_heads: int = 8,
                 mlp_ratio: float = 4.0,
                 qkv_bias: bool = True,
                 qk_norm: bool = False,
                 latent_len: int = 1,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None) -> None:
        super().__init__()
        embed_dim = embed_dim or in_features
        out_features = out_features or in_features
        if embed_dim % num_heads:
            raise ValueError(f'embed_dim {embed_dim} is not divisible by '
                             f'num_heads {num_heads}')
        norm_cfg = dict(norm_cfg or dict(type='LN', eps=1e-6))
        act_cfg = dict(act_cfg or dict(type='GELU'))
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.latent_len = latent_len

        self.latent = nn.Parameter(torch.zeros(1, latent_len, embed_dim))
        self.q = nn.Linear(embed_dim, embed_dim, bias=qkv_bias)
        self.kv = nn.Linear(in_features, embed_dim * 2, bias=qkv_bias)
        if qk_norm:
            self.q_norm = build_norm_layer(norm_cfg, self.head_dim)[1]
            self.k_norm = build_norm_layer(norm_cfg, self.head_dim)[1]
        else:
            self.q_norm = self.k_norm = nn.Identity()
        self.proj = nn.Linear(embed_dim, out_features)
        self.norm = build_norm_layer(norm_cfg, out_features)[1]
        hidden = int(out_features * mlp_ratio)
        self.mlp = nn.Sequential(  # timm's Mlp, with its names
            OrderedDict(
                fc1=nn.Linear(out_features, hidden),
                act=build_activation_layer(act_cfg),
                fc2=nn.Linear(hidden, out_features)))
        nn.init.trunc_normal_(self.latent, std=embed_dim**-0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool tokens ``(N, L, in_features)`` to ``(N, out_features)``."""
        batch, length, _ = x.shape
        heads, head_dim = self.num_heads, self.head_dim
        q = self.q(self.latent.expand(batch, -1, -1))
        q = q.reshape(batch, self.latent_len, heads, head_dim).transpose(1, 2)
        kv = self.kv(x).reshape(batch, length, 2, heads, head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        x = F.scaled_dot_product_attention(q, k, v)
        x = x.transpose(1, 2).reshape(batch, self.latent_len, -1)
        x = self.proj(x)
        x = x + self.mlp(self.norm(x))
        return x[:, 0]
