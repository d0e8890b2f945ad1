# Copyright (c) mmprompt contributors. All rights reserved.
"""RAM's tagging head: the cross-attention, MLP and norms of its BERT
decoder (``recognize-anything``'s ``q2l_config.json``, Apache-2.0), on SDPA.
Keys are mapped by :mod:`mmprompt.converters.ram`.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmprompt.models.utils.tensor_cache import TensorCache
from mmprompt.registry import MODELS


class LabelCrossAttention(nn.Module):
    """Multi-head attention from label queries to image tokens (no mask).

    Args:
        embed_dims (int): Width of the queries and of the output.
        memory_dims (int): Width of the image tokens (keys and values).
        num_heads (int): Number of heads.
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

    def project_memory(
            self, memory: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Keys and values, each ``(B, heads, N, C / heads)``.

        Args:
            memory (torch.Tensor): Image tokens, ``(B, N, memory_dims)``.
        """
        return (self._split_heads(self.k_proj(memory)),
                self._split_heads(self.v_proj(memory)))

    def attend(self, q: torch.Tensor, key: torch.Tensor,
               value: torch.Tensor) -> torch.Tensor:
        """Attend projected queries to projected image tokens: ``(B, K, C)``.

        Args:
            q (torch.Tensor): ``q_proj`` of the queries, ``(K, C)`` or
                ``(B, K, C)``.
            key (torch.Tensor): ``(B, heads, N, C / heads)``.
            value (torch.Tensor): ``(B, heads, N, C / heads)``.
        """
        batch = key.size(0)
        if q.dim() == 2:
            q = q.expand(batch, -1, -1)
        out = F.scaled_dot_product_attention(self._split_heads(q), key, value)
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

    def forward(self,
                queries: torch.Tensor,
                key: torch.Tensor,
                value: torch.Tensor,
                q: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Updated label queries, ``(B, K, C)``.

        Args:
            queries (torch.Tensor): ``(K, C)`` or ``(B, K, C)``.
            key (torch.Tensor): Keys of :meth:`LabelCrossAttention.
                project_memory`.
            value (torch.Tensor): Its values.
            q (torch.Tensor, optional): ``q_proj(queries)`` if known.
                Defaults to None.
        """
        if q is None:
            q = self.cross_attn.q_proj(queries)
        x = self.norm1(self.cross_attn.attend(q, key, value) + queries)
        return self.norm2(self.fc2(F.gelu(self.fc1(x))) + x)


@MODELS.register_module()
class RAMTaggingHead(BaseModule):
    """RAM's alignment decoder: label queries attend to image tokens.

    Defaults are RAM's (exact GELU, LayerNorm eps 1e-12). The queries never
    attend to each other: on the CPU, chunks keep the MLP activations in
    cache (exact, faster). Shared queries' first projection is cached.

    Args:
        embed_dims (int): Width of the label queries. Defaults to 768.
        memory_dims (int): Width of the image tokens. Defaults to 512.
        num_layers (int): Number of decoder layers. Defaults to 2.
        num_heads (int): Number of attention heads. Defaults to 4.
        feedforward_channels (int): MLP width. Defaults to 3072.
        norm_eps (float): Epsilon of the LayerNorms. Defaults to 1e-12.
        cpu_chunk_rows (int, optional): (image, tag) rows decoded at once on
            the CPU; None: all. Defaults to 1024.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 embed_dims: int = 768,
                 memory_dims: int = 512,
                 num_layers: int = 2,
                 num_heads: int = 4,
                 feedforward_channels: int = 3072,
                 norm_eps: float = 1e-12,
                 cpu_chunk_rows: Optional[int] = 1024,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if cpu_chunk_rows is not None and cpu_chunk_rows < 1:
            raise ValueError(
                f'cpu_chunk_rows must be positive, got {cpu_chunk_rows}')
        self.embed_dims = embed_dims
        self.memory_dims = memory_dims
        self.cpu_chunk_rows = cpu_chunk_rows
        self.layers = nn.ModuleList([
            TaggingDecoderLayer(embed_dims, memory_dims, num_heads,
                                feedforward_channels, norm_eps)
            for _ in range(num_layers)
        ])
        self._first_q = TensorCache()

    def forward(self, queries: torch.Tensor,
                memory: torch.Tensor) -> torch.Tensor:
        """Decode one embedding per label and image, ``(B, K, embed_dims)``.

        Args:
            queries (torch.Tensor): ``(K, embed_dims)`` (RAM) or
                ``(B, K, embed_dims)`` (RAM++).
            memory (torch.Tensor): Image tokens, ``(B, N, memory_dims)``.
        """
        batch, num = memory.size(0), queries.size(-2)
        if not self.layers:  # no layers: broadcast the shared queries
            return queries.expand(batch, -1, -1) if queries.dim() == 2 \
                else queries
        kv = [layer.cross_attn.project_memory(memory) for layer in self.layers]
        q_proj = self.layers[0].cross_attn.q_proj
        first_q = None
        if queries.dim() == 2:
            first_q = self._first_q.get((queries, q_proj.weight, q_proj.bias),
                                        lambda: q_proj(queries))

        def decode(start: int, end: int) -> torch.Tensor:
            x = queries[..., start:end, :]
            q = None if first_q is None else first_q[start:end]
            for layer, (key, value) in zip(self.layers, kv):
                x = layer(x, key, value, q)
                q = None
            return x

        step = num
        if memory.device.type == 'cpu' and self.cpu_chunk_rows is not None:
            step = max(1, self.cpu_chunk_rows // batch)
        if step >= num:
            return decode(0, num)
        out = memory.new_empty(batch, num, self.embed_dims)
        for start in range(0, num, step):
            out[:, start:start + step] = decode(start, start + step)
        return out
