# Copyright (c) mmprompt contributors. All rights reserved.
"""The text tower of OpenAI CLIP and its SigLIP variant, after OpenAI's
``clip/model.py`` and open_clip's ``TextTransformer`` (MIT licences).
Submodules carry the names of OpenAI's checkpoint keys."""
import copy
import logging
from collections import OrderedDict
from typing import List, NamedTuple, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MMLogger
from mmengine.model import BaseModule

from mmprompt.registry import MODELS

#: OpenAI's activation, x * sigmoid(1.702 * x); open_clip's models without
#: ``quick_gelu`` use ``GELU``. Registered by MMPreTrain only, hence the scope.
QUICK_GELU = dict(type='mmpretrain.QuickGELU')

KeyValue = Tuple[torch.Tensor, torch.Tensor]


class PrefixCache(NamedTuple):
    """Keys and values of a shared token prefix, one pair per block, from
    :meth:`CLIPTextTransformer.encode_prefix`.

    Attributes:
        keys_values (list[tuple]): Per block, ``(K, V)`` of shape
            ``(P, heads, length, C / heads)``, ``P`` 1 or one per row.
        length (int): Number of prefix tokens.
        rows (torch.Tensor, optional): ``(N, )`` index of each row's prefix
            among ``P`` shared ones. Defaults to None.
    """
    keys_values: List[KeyValue]
    length: int
    rows: Optional[torch.Tensor] = None


def eot_positions(texts: torch.Tensor) -> torch.Tensor:
    """``(N, )`` positions of the end-of-text token in each row of token ids
    ``texts``: its largest id (the first, if repeated), as in OpenAI's code.

    The argmax runs over float32 (exact below 2**24): an int64 ``ArgMax`` is
    missing from some ONNX runtimes (onnxruntime's CUDA provider, TensorRT).
    """
    return texts.float().argmax(dim=-1)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameters
    and SDPA's ``is_causal`` (no stored mask).

    Args:
        embed_dims (int): Width of the tokens.
        num_heads (int): Number of attention heads.
        causal (bool): Causal attention (False: SigLIP). Defaults to True.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 causal: bool = True) -> None:
        super().__init__()
        if embed_dims % num_heads != 0:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible '
                             f'by num_heads ({num_heads})')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.causal = causal
        self.in_proj_weight = nn.Parameter(
            torch.empty(3 * embed_dims, embed_dims))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dims))
        self.out_proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention over tokens ``x``, ``(N, L, C)``."""
        return self.forward_cached(x)[0]

    def forward_cached(
            self,
            x: torch.Tensor,
            past: Optional[KeyValue] = None
    ) -> Tuple[torch.Tensor, KeyValue]:
        """Attention after an optional cached prefix; also returns K, V.

        Args:
            x (torch.Tensor): Tokens, ``(N, L, C)``, following the prefix.
            past (tuple, optional): ``(K, V)`` of the prefix tokens, batch
                1 or ``N`` (see :class:`PrefixCache`). Defaults to None.

        Returns:
            tuple: The output ``(N, L, C)`` and this call's ``(K, V)``.
        """
        n, length, _ = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        # (N, L, 3C) -> (3, N, heads, L, C / heads)
        qkv = qkv.reshape(n, length, 3, self.num_heads,
                          -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if past is None:
            out = F.scaled_dot_product_attention(
                q, k, v, is_causal=self.causal)
        elif not self.causal:
            raise ValueError('a cached prefix needs causal attention')
        else:
            past_k, past_v = (t.expand(n, -1, -1, -1) for t in past)
            prefix = past_k.size(2)
            # Every token sees the whole prefix and the tokens up to itself.
            mask = torch.ones(
                length, prefix + length, dtype=torch.bool,
                device=x.device).tril(prefix)
            out = F.scaled_dot_product_attention(
                q,
                torch.cat([past_k, k], dim=2),
                torch.cat([past_v, v], dim=2),
                attn_mask=mask)
        out = out.transpose(1, 2).reshape(n, length, self.embed_dims)
        return self.out_proj(out), (k, v)

    def forward_pooled(self,
                       x: torch.Tensor,
                       pooled: torch.Tensor,
                       past: Optional[KeyValue] = None) -> torch.Tensor:
        """The output at one position per row only (the others are what a
        last block computes for nothing).

        Args:
            x (torch.Tensor): Tokens, ``(N, L, C)``, following the prefix.
            pooled (torch.Tensor): ``(N, )`` position of each row's query.
            past (tuple, optional): As for :meth:`forward_cached`.

        Returns:
            torch.Tensor: ``(N, C)``.
        """
        n, length, _ = x.shape
        rows = torch.arange(n, device=x.device)
        width = self.embed_dims
        q = F.linear(x[rows, pooled], self.in_proj_weight[:width],
                     self.in_proj_bias[:width])
        kv = F.linear(x, self.in_proj_weight[width:],
                      self.in_proj_bias[width:])
        # (N, L, 2C) -> (2, N, heads, L, C / heads); q: (N, heads, 1, .)
        kv = kv.reshape(n, length, 2, self.num_heads,
                        -1).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        q = q.reshape(n, self.num_heads, 1, -1)
        mask = None
        if self.causal:
            mask = (torch.arange(length, device=x.device) <=
                    pooled[:, None])[:, None, None]
        if past is not None:
            if not self.causal:
                raise ValueError('a cached prefix needs causal attention')
            past_k, past_v = (t.expand(n, -1, -1, -1) for t in past)
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
            seen = mask.new_ones(n, 1, 1, past_k.size(2))
            mask = torch.cat([seen, mask], dim=-1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(out.reshape(n, width))


class ResidualAttentionBlock(nn.Module):
    """A pre-norm transformer block: attention, then an MLP.

    Args:
        embed_dims (int): Width of the tokens.
        num_heads (int): Number of attention heads.
        feedforward_channels (int): Hidden width of the MLP.
        norm_eps (float): Epsilon of the LayerNorms. Defaults to 1e-5.
        causal (bool): See :class:`CausalSelfAttention`. Defaults to True.
        act_cfg (dict, optional): The MLP's activation.
            Defaults to None (:data:`QUICK_GELU`).
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 feedforward_channels: int,
                 norm_eps: float = 1e-5,
                 causal: bool = True,
                 act_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn = CausalSelfAttention(embed_dims, num_heads, causal)
        self.ln_2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        act = MODELS.build(copy.deepcopy(act_cfg or QUICK_GELU))
        self.mlp = nn.Sequential(
            OrderedDict([
                ('c_fc', nn.Linear(embed_dims, feedforward_channels)),
                ('gelu', act),
                ('c_proj', nn.Linear(feedforward_channels, embed_dims)),
            ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

    def forward_cached(
            self,
            x: torch.Tensor,
            past: Optional[KeyValue] = None
    ) -> Tuple[torch.Tensor, KeyValue]:
        """:meth:`forward` after a cached prefix; also returns K, V."""
        attn, kv = self.attn.forward_cached(self.ln_1(x), past)
        x = x + attn
        return x + self.mlp(self.ln_2(x)), kv

    def forward_pooled(self,
                       x: torch.Tensor,
                       pooled: torch.Tensor,
                       past: Optional[KeyValue] = None) -> torch.Tensor:
        """:meth:`forward_cached`'s output at ``pooled`` only, ``(N, C)``."""
        rows = torch.arange(x.size(0), device=x.device)
        x = x[rows, pooled] + self.attn.forward_pooled(
            self.ln_1(x), pooled, past)
        return x + self.mlp(self.ln_2(x))


@MODELS.register_module()
class CLIPTextTransformer(BaseModule):
    """The causal text transformer of CLIP, pooled at the end-of-text token.

    Rows shorter than ``context_length`` give the features of the
    zero-padded rows (attention is causal, pooling reads the end-of-text
    token). SigLIP's tower (``causal=False, pool='last', proj_bias=True,
    norm_eps=1e-6``) sees padding, so it takes only full-length rows and no
    shared prefix.

    Args:
        vocab_size (int): Number of token ids. Defaults to 49408.
        context_length (int): Longest row accepted. Defaults to 77.
        embed_dims (int): Width of the transformer. Defaults to 512.
        num_layers (int): Number of blocks. Defaults to 12.
        num_heads (int): Number of attention heads. Defaults to 8.
        feedforward_channels (int, optional): Hidden width of the MLPs.
            Defaults to ``4 * embed_dims``.
        out_dims (int): Width of the joint space. Defaults to 512.
        norm_eps (float): Epsilon of the LayerNorms. Defaults to 1e-5.
        causal (bool): Causal (CLIP) or bidirectional (SigLIP).
            Defaults to True.
        pool (str): ``'eot'`` (CLIP) or ``'last'`` (SigLIP).
            Defaults to ``'eot'``.
        proj_bias (bool): Projection bias (SigLIP). Defaults to False.
        act_cfg (dict, optional): The MLPs' activation (SigLIP 2: tanh
            ``GELU``). Defaults to None (:data:`QUICK_GELU`).
        init_cfg (dict, optional): Initialization config dict.
            Defaults to None.
    """
    #: Checkpoint keys dropped on load (a stored causal mask).
    runtime_keys: Tuple[str, ...] = (r'(.*\.)?attn_mask', )

    POOLS = ('eot', 'last')

    def __init__(self,
                 vocab_size: int = 49408,
                 context_length: int = 77,
                 embed_dims: int = 512,
                 num_layers: int = 12,
                 num_heads: int = 8,
                 feedforward_channels: Optional[int] = None,
                 out_dims: int = 512,
                 norm_eps: float = 1e-5,
                 causal: bool = True,
                 pool: str = 'eot',
                 proj_bias: bool = False,
                 act_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if pool not in self.POOLS:
            raise ValueError(f'pool must be one of {self.POOLS}, got '
                             f'{pool!r}')
        self.causal = causal
        self.pool = pool
        self.vocab_size = vocab_size
        self.context_length = context_length
        self.embed_dims = embed_dims
        self.num_layers = num_layers
        self.out_dims = out_dims
        feedforward_channels = feedforward_channels or 4 * embed_dims

        self.token_embedding = nn.Embedding(vocab_size, embed_dims)
        self.positional_embedding = nn.Parameter(
            torch.empty(context_length, embed_dims))
        self.resblocks = nn.ModuleList([
            ResidualAttentionBlock(embed_dims, num_heads, feedforward_channels,
                                   norm_eps, causal, act_cfg)
            for _ in range(num_layers)
        ])
        self.ln_final = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.text_projection = nn.Parameter(torch.empty(embed_dims, out_dims))
        self.text_projection_bias = nn.Parameter(
            torch.zeros(out_dims)) if proj_bias else None
        self._reset_parameters()

    def _dump_init_info(self) -> None:
        # MMEngine logs one INFO line per parameter (about 600 here): only
        # into a log file, not a bare console.
        logger = MMLogger.get_current_instance()
        if any(isinstance(h, logging.FileHandler) for h in logger.handlers):
            super()._dump_init_info()

    @torch.no_grad()
    def _reset_parameters(self) -> None:
        """Random initialisation with OpenAI's standard deviations."""
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        width = self.embed_dims
        proj_std = width**-0.5 * (2 * self.num_layers)**-0.5
        for block in self.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=width**-0.5)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=(2 * width)**-0.5)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=width**-0.5)

    @property
    def block_dtype(self) -> torch.dtype:
        """torch.dtype: The dtype the residual blocks run in
        (:func:`~mmprompt.models.utils.apply_precision` may cast them
        alone)."""
        return self.resblocks[0].attn.in_proj_weight.dtype

    def forward(self, texts: torch.Tensor) -> torch.Tensor:
        """Token ids ``texts``, ``(N, L)``, to features ``(N, out_dims)``,
        not normalised."""
        if texts.dim() != 2:
            raise ValueError('expected token ids of shape (N, L), got '
                             f'{tuple(texts.shape)}')
        if self.pool == 'eot':
            pooled = eot_positions(texts)
        else:
            pooled = texts.new_full((texts.size(0), ), texts.size(1) - 1)
        return self.forward_embeddings(self.token_embedding(texts), pooled)

    def _check_length(self, length: int) -> None:
        if length > self.context_length:
            raise ValueError(f'rows of {length} tokens exceed the context '
                             f'length {self.context_length}')

    def forward_embeddings(
            self,
            embeds: torch.Tensor,
            eot: torch.Tensor,
            prefix: Optional[PrefixCache] = None) -> torch.Tensor:
        """:meth:`forward` with the token lookup done by the caller (which
        may put any vectors in a row: learned prompt contexts).

        Args:
            embeds (torch.Tensor): ``(N, L, embed_dims)``, before positions.
            eot (torch.Tensor): ``(N, )`` index in each row of the token
                to pool, counted within ``embeds``.
            prefix (PrefixCache, optional): Tokens before every row, from
                :meth:`encode_prefix`. Defaults to None.

        Returns:
            torch.Tensor: ``(N, out_dims)``, not normalised.
        """
        if embeds.dim() != 3 or embeds.size(-1) != self.embed_dims:
            raise ValueError(f'expected embeddings (N, L, {self.embed_dims}), '
                             f'got {tuple(embeds.shape)}')
        start = 0 if prefix is None else prefix.length
        length = embeds.size(1)
        self._check_length(start + length)
        if not self.causal and length != self.context_length:
            raise ValueError(
                f'rows of {length} tokens: a bidirectional text tower takes '
                f'rows padded to its context length {self.context_length}')
        x = embeds + self.positional_embedding[start:start + length]
        if prefix is not None and not self.causal:
            raise ValueError('a cached prefix needs causal attention')
        x = x.to(self.block_dtype)
        pasts = [None] * self.num_layers
        if prefix is not None:
            pasts = [kv if prefix.rows is None else
                     tuple(t[prefix.rows] for t in kv)
                     for kv in prefix.keys_values]
        *blocks, last = self.resblocks
        for block, past in zip(blocks, pasts):
            x = block.forward_cached(x, past)[0]
        # Only the pooled token is read: the last block, ln_final and the
        # projection run on it alone (exact).
        x = last.forward_pooled(x, eot, pasts[-1])
        x = self.ln_final(x.to(self.ln_final.weight.dtype))
        x = x.to(self.text_projection.dtype) @ self.text_projection
        if self.text_projection_bias is not None:
            x = x + self.text_projection_bias
        return x

    def encode_prefix(self, embeds: torch.Tensor) -> PrefixCache:
        """Run the first tokens of rows that share them, once (exact under
        the causal mask).

        Args:
            embeds (torch.Tensor): ``(P, L, embed_dims)`` prefix embeddings,
                ``P`` 1 (shared by every row) or one per row.

        Returns:
            PrefixCache: For ``prefix=`` of :meth:`forward_embeddings`.
        """
        if not self.causal:
            raise ValueError('a shared prefix is exact only under a causal '
                             'mask; this text tower is bidirectional')
        length = embeds.size(1)
        self._check_length(length)
        x = (embeds + self.positional_embedding[:length]).to(self.block_dtype)
        cache = []
        for block in self.resblocks:
            x, kv = block.forward_cached(x)
            cache.append(kv)
        return PrefixCache(cache, length)
