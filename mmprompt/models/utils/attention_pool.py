# Copyright (c) mmprompt contributors. All rights reserved.
"""Attention pooling with a learned latent query.

The head of SigLIP's and PE-Core's image towers (``MAP``, multi-head
attention pooling, `Zhai et al., 2022 <https://arxiv.org/abs/2205.01580>`_).
It computes what timm's ``AttentionPoolLatent`` (Apache-2.0) computes, with
timm's argument and parameter names (``latent``, ``q``, ``kv``, ``proj``,
``norm``, ``mlp.fc1``, ``mlp.fc2``), so that timm's weights load as they
are.
"""
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmprompt.registry import MODELS


class Mlp(nn.Module):
    """``fc2(act(fc1(x)))``, with timm's ``Mlp`` parameter names.

    Args:
        in_features (int): Input and output width.
        hidden_features (int): Hidden width.
        act_layer (Callable): Activation class. Defaults to ``nn.GELU``.
    """

    def __init__(self,
                 in_features: int,
                 hidden_features: int,
                 act_layer: Callable[[], nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


@MODELS.register_module()
class AttentionPool(nn.Module):
    """Pool tokens by attending to them from ``latent_len`` learned queries.

    The queries ``q(latent)`` attend to ``kv(x)`` (scaled dot-product,
    ``num_heads`` heads); the result goes through ``proj`` and a residual
    MLP, ``y + mlp(norm(y))``.

    Args:
        in_features (int): Width of the tokens.
        out_features (int, optional): Width of ``proj``, the norm and the
            MLP. Defaults to ``in_features``.
        embed_dim (int, optional): Width of the attention; must equal
            ``in_features`` (the heads are merged back to it, as in timm).
            Defaults to ``in_features``.
        num_heads (int): Number of attention heads. Defaults to 8.
        mlp_ratio (float): Hidden width of the MLP over ``out_features``.
            Defaults to 4.0.
        qkv_bias (bool): Biases in ``q`` and ``kv``. Defaults to True.
        qk_norm (bool): Normalise queries and keys per head with
            ``norm_layer``. Defaults to False.
        latent_len (int): Number of learned queries. Defaults to 1.
        pool_type (str): ``'token'`` (the first query's output), ``'avg'``
            (their mean) or ``''`` (all of them). Defaults to ``'token'``.
        norm_layer (Callable, optional): Norm class of the MLP branch (and
            of ``qk_norm``), called with a width. Defaults to None (no norm
            before the MLP, ``nn.LayerNorm`` for ``qk_norm``, as in timm).
        act_layer (Callable): Activation of the MLP. Defaults to
            ``nn.GELU``.
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
                 pool_type: str = 'token',
                 norm_layer: Optional[Callable[[int], nn.Module]] = None,
                 act_layer: Callable[[], nn.Module] = nn.GELU) -> None:
        super().__init__()
        embed_dim = embed_dim or in_features
        out_features = out_features or in_features
        if embed_dim != in_features:
            raise ValueError(f'embed_dim ({embed_dim}) must equal '
                             f'in_features ({in_features})')
        if embed_dim % num_heads != 0:
            raise ValueError(f'embed_dim ({embed_dim}) must be divisible by '
                             f'num_heads ({num_heads})')
        if pool_type not in ('token', 'avg', ''):
            raise ValueError("pool_type must be 'token', 'avg' or '', got "
                             f'{pool_type!r}')
        self.num_heads = num_heads
        self.latent_len = latent_len
        self.pool_type = pool_type
        self.latent = nn.Parameter(torch.zeros(1, latent_len, embed_dim))
        self.q = nn.Linear(embed_dim, embed_dim, bias=qkv_bias)
        self.kv = nn.Linear(embed_dim, 2 * embed_dim, bias=qkv_bias)
        head_norm = norm_layer or nn.LayerNorm
        head_dim = embed_dim // num_heads
        self.q_norm = head_norm(head_dim) if qk_norm else nn.Identity()
        self.k_norm = head_norm(head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(embed_dim, out_features)
        self.norm = norm_layer(out_features) if norm_layer else nn.Identity()
        self.mlp = Mlp(out_features, int(out_features * mlp_ratio), act_layer)
        nn.init.trunc_normal_(self.latent, std=embed_dim**-0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool ``x``.

        Args:
            x (torch.Tensor): Tokens, ``(N, L, in_features)``.

        Returns:
            torch.Tensor: ``(N, out_features)``, or ``(N, latent_len,
            out_features)`` for ``pool_type=''``.
        """
        n, length, width = x.shape
        q = self.q(self.latent.expand(n, -1, -1))
        q = q.reshape(n, self.latent_len, self.num_heads, -1).transpose(1, 2)
        # (N, L, 2C) -> (2, N, heads, L, C / heads)
        kv = self.kv(x).reshape(n, length, 2, self.num_heads,
                                -1).permute(2, 0, 3, 1, 4)
        k, v = kv.unbind(0)
        out = F.scaled_dot_product_attention(self.q_norm(q), self.k_norm(k), v)
        out = out.transpose(1, 2).reshape(n, self.latent_len, width)
        out = self.proj(out)
        out = out + self.mlp(self.norm(out))
        if self.pool_type == 'token':
            return out[:, 0]
        if self.pool_type == 'avg':
            return out.mean(dim=1)
        return out
