# Copyright (c) mmprompt contributors. All rights reserved.
"""The tagging head of RAM: a Query2Label-style cross-attention decoder.

The architecture is the one of `RAM <https://arxiv.org/abs/2306.03514>`_ and
`RAM++ <https://arxiv.org/abs/2310.15200>`_ (``recognize-anything``,
Apache-2.0), which reuse a BERT encoder stripped to its cross-attention,
intermediate and output blocks (``q2l_config.json``). Only what tagging needs
is written here, for mmprompt, on
:func:`torch.nn.functional.scaled_dot_product_attention`: no embeddings, no
self-attention, no pooler, no Hugging Face dependency.

Parameter names and their source keys (``tagging_head.encoder.layer.{i}.``
in RAM's checkpoints), mapped by :mod:`mmprompt.converters.ram`:

- ``layers.{i}.cross_attn.{q,k,v}_proj``: ``crossattention.self.{query,key,
  value}``;
- ``layers.{i}.cross_attn.out_proj``: ``crossattention.output.dense``;
- ``layers.{i}.norm1``: ``crossattention.output.LayerNorm``;
- ``layers.{i}.fc1`` / ``fc2``: ``intermediate.dense`` / ``output.dense``;
- ``layers.{i}.norm2``: ``output.LayerNorm``.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmprompt.registry import MODELS


class LabelCrossAttention(nn.Module):
    """Multi-head attention from label queries to image tokens.

    The queries do not attend to each other, and every image token is a key
    and a value (no mask).

    Args:
        embed_dims (int): Width of the queries and of the output.
        memory_dims (int): Width of the image tokens (keys and values).
        num_heads (int): Number of heads; each takes a contiguous chunk of
            ``embed_dims``.
    """

    def __init__(self, embed_dims: int, memory_dims: int,
                 num_heads: int) -> None:
        super().__init__()
        if embed_dims % num_heads != 0:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible '
                             f'by num_heads ({num_heads})')
        self.num_heads = num_heads
        self.q_proj = nn.Linear(embed_dims, embed_dims)
        self.k_proj = nn.Linear(memory_dims, embed_dims)
        self.v_proj = nn.Linear(memory_dims, embed_dims)
        self.out_proj = nn.Linear(embed_dims, embed_dims)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L, C)`` -> ``(B, heads, L, C / heads)``."""
        b, length, _ = x.shape
        return x.view(b, length, self.num_heads, -1).transpose(1, 2)

    def forward(self, queries: torch.Tensor,
                memory: torch.Tensor) -> torch.Tensor:
        """Attend the queries to the image tokens.

        Args:
            queries (torch.Tensor): ``(K, C)``, the same for every image, or
                ``(B, K, C)``.
            memory (torch.Tensor): Image tokens, ``(B, N, memory_dims)``.

        Returns:
            torch.Tensor: ``out_proj`` of the attended values, ``(B, K, C)``.
        """
        batch = memory.size(0)
        q = self.q_proj(queries)
        if q.dim() == 2:
            # Shared queries are projected once, then viewed per image.
            q = q.expand(batch, -1, -1)
        out = F.scaled_dot_product_attention(
            self._split_heads(q), self._split_heads(self.k_proj(memory)),
            self._split_heads(self.v_proj(memory)))
        out = out.transpose(1, 2).reshape(batch, q.size(1), q.size(2))
        return self.out_proj(out)


class TaggingDecoderLayer(nn.Module):
    """One post-norm decoder layer: cross-attention, then a GELU MLP.

    Args:
        embed_dims (int): Width of the label queries.
        memory_dims (int): Width of the image tokens.
        num_heads (int): Number of attention heads.
        feedforward_channels (int): Hidden width of the MLP.
        norm_eps (float): Epsilon of the LayerNorms.
    """

    def __init__(self, embed_dims: int, memory_dims: int, num_heads: int,
                 feedforward_channels: int, norm_eps: float) -> None:
        super().__init__()
        self.cross_attn = LabelCrossAttention(embed_dims, memory_dims,
                                              num_heads)
        self.norm1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.fc1 = nn.Linear(embed_dims, feedforward_channels)
        self.fc2 = nn.Linear(feedforward_channels, embed_dims)
        self.norm2 = nn.LayerNorm(embed_dims, eps=norm_eps)

    def forward(self, queries: torch.Tensor,
                memory: torch.Tensor) -> torch.Tensor:
        """Update the label queries from the image tokens.

        Args:
            queries (torch.Tensor): ``(K, C)`` or ``(B, K, C)``.
            memory (torch.Tensor): Image tokens, ``(B, N, memory_dims)``.

        Returns:
            torch.Tensor: ``(B, K, C)``.
        """
        x = self.norm1(self.cross_attn(queries, memory) + queries)
        return self.norm2(self.fc2(F.gelu(self.fc1(x))) + x)


@MODELS.register_module()
class RAMTaggingHead(BaseModule):
    """RAM's alignment decoder: label queries attend to image tokens.

    Defaults reproduce RAM's ``q2l_config.json`` with its ``encoder_width``
    of 512: 2 layers, 768 wide, 4 heads, MLP 3072, exact GELU, LayerNorm eps
    1e-12.

    Args:
        embed_dims (int): Width of the label queries. Defaults to 768.
        memory_dims (int): Width of the image tokens. Defaults to 512.
        num_layers (int): Number of decoder layers. Defaults to 2.
        num_heads (int): Number of attention heads. Defaults to 4.
        feedforward_channels (int): Hidden width of the MLPs.
            Defaults to 3072.
        norm_eps (float): Epsilon of the LayerNorms. Defaults to 1e-12.
        init_cfg (dict, optional): Initialization config dict.
            Defaults to None.
    """

    def __init__(self,
                 embed_dims: int = 768,
                 memory_dims: int = 512,
                 num_layers: int = 2,
                 num_heads: int = 4,
                 feedforward_channels: int = 3072,
                 norm_eps: float = 1e-12,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.embed_dims = embed_dims
        self.memory_dims = memory_dims
        self.layers = nn.ModuleList([
            TaggingDecoderLayer(embed_dims, memory_dims, num_heads,
                                feedforward_channels, norm_eps)
            for _ in range(num_layers)
        ])

    def forward(self, queries: torch.Tensor,
                memory: torch.Tensor) -> torch.Tensor:
        """Decode one embedding per label and image.

        Args:
            queries (torch.Tensor): Label queries, ``(K, embed_dims)`` when
                every image shares them (RAM) or ``(B, K, embed_dims)``
                (RAM++).
            memory (torch.Tensor): Image tokens, ``(B, N, memory_dims)``.

        Returns:
            torch.Tensor: ``(B, K, embed_dims)``.
        """
        x = queries
        for layer in self.layers:
            x = layer(x, memory)
        if x.dim() == 2:  # no layers: broadcast the shared queries
            x = x.expand(memory.size(0), -1, -1)
        return x
