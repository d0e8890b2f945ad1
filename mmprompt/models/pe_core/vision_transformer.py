# Copyright (c) mmprompt contributors. All rights reserved.
"""The image tower of Meta's `Perception Encoder
<https://arxiv.org/abs/2504.13181>`_ (PE-Core): timm's ``vit_pe_core_*`` of
MMPreTrain's pieces (``ViTEVA02``'s RoPE starts at 0, y first, where PE's
starts at 1, x first, and its blocks have a SwiGLU MLP)."""
import copy
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn.bricks.transformer import FFN, PatchEmbed
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import trunc_normal_
from mmengine.utils import to_2tuple
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.models.utils import (MultiheadAttention, build_norm_layer,
                                     resize_pos_embed)

from mmprompt.models.utils.attention_pool import AttentionPool
from mmprompt.registry import MODELS

Rope = Tuple[torch.Tensor, torch.Tensor]


def rope_2d(grid: Sequence[int],
            head_dims: int,
            ref_grid: Optional[Sequence[int]] = None,
            offset: float = 1.0,
            temperature: float = 10000.0) -> Rope:
    """Sines and cosines of PE's axial 2-D rotary position embedding.

    Patch ``(i, j)`` of an ``(H, W)`` grid sits at ``x = (j + offset) / W *
    W_ref``, ``y = (i + offset) / H * H_ref``; angles are laid out ``[x
    bands, y bands]``, each repeated for the two channels of its pair.

    Args:
        grid (Sequence[int]): ``(H, W)`` patches.
        head_dims (int): Channels per head, a multiple of 4.
        ref_grid (Sequence[int], optional): Defaults to ``grid``.
        offset (float): Position of the first patch. Defaults to 1.0.
        temperature (float): Base of the frequencies. Defaults to 10000.

    Returns:
        tuple: ``(sin, cos)``, each ``(H * W, head_dims)`` float32.
    """
    if head_dims % 4 != 0:
        raise ValueError(f'head_dims must be a multiple of 4, got {head_dims}')
    num_bands = head_dims // 4
    exponents = torch.arange(num_bands, dtype=torch.int64).float() / num_bands
    bands = 1.0 / temperature**exponents
    height, width = grid
    ref_height, ref_width = ref_grid or grid
    xs = (torch.arange(width).float() + offset) / width * ref_width
    ys = (torch.arange(height).float() + offset) / height * ref_height
    coords = torch.stack(torch.meshgrid(xs, ys, indexing='xy'), dim=-1)
    # (H, W, 2, bands) -> (H * W, 2 * bands), then each angle twice.
    angles = (coords.unsqueeze(-1) * bands).flatten(-2).flatten(0, -2)
    angles = angles.repeat_interleave(2, dim=-1)
    return angles.sin(), angles.cos()


def apply_rope(x: torch.Tensor, rope: Rope) -> torch.Tensor:
    """Rotate each channel pair ``(a, b)`` to ``(a cos - b sin, b cos + a
    sin)``.

    Args:
        x (torch.Tensor): ``(..., L, head_dims)``.
        rope (tuple): ``(sin, cos)`` from :func:`rope_2d`.

    Returns:
        torch.Tensor: Same shape and dtype as ``x``.
    """
    sin, cos = rope
    pairs = x.unflatten(-1, (-1, 2))
    turned = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)
    return (x * cos + turned * sin).to(x.dtype)


class RotaryEmbedding2D(nn.Module):
    """:func:`rope_2d` (same arguments) of the built ``grid``, as
    non-persistent buffers; other grids are computed on the fly."""

    def __init__(self,
                 head_dims: int,
                 grid: Sequence[int],
                 ref_grid: Optional[Sequence[int]] = None,
                 offset: float = 1.0,
                 temperature: float = 10000.0) -> None:
        super().__init__()
        self.head_dims = head_dims
        self.grid = tuple(grid)
        self.ref_grid = tuple(ref_grid or grid)
        self.offset = offset
        self.temperature = temperature
        sin, cos = rope_2d(self.grid, head_dims, self.ref_grid, offset,
                           temperature)
        self.register_buffer('sin', sin, persistent=False)
        self.register_buffer('cos', cos, persistent=False)

    def forward(self, grid: Sequence[int]) -> Rope:
        """``(sin, cos)`` of a ``(H, W)`` grid."""
        if tuple(grid) == self.grid:
            return self.sin, self.cos
        sin, cos = rope_2d(grid, self.head_dims, self.ref_grid, self.offset,
                           self.temperature)
        return sin.to(self.sin), cos.to(self.cos)


class RopeMultiheadAttention(MultiheadAttention):
    """MMPreTrain's ``MultiheadAttention`` with RoPE on the patch tokens.

    Args:
        num_extra_tokens (int): Leading tokens unrotated. Defaults to 1.
        **kwargs: Arguments of MMPreTrain's ``MultiheadAttention``.
    """

    def __init__(self, num_extra_tokens: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_extra_tokens = num_extra_tokens

    def forward(self, x: torch.Tensor, rope: Rope) -> torch.Tensor:
        """Attend over ``x`` ``(N, L, C)`` with ``rope`` of its patches."""
        n, length, _ = x.shape
        qkv = self.qkv(x).reshape(n, length, 3, self.num_heads,
                                  self.head_dims).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        extra = self.num_extra_tokens
        q, k = (
            torch.cat([t[:, :, :extra],
                       apply_rope(t[:, :, extra:], rope)],
                      dim=2) for t in (q, k))
        attn_drop = self.attn_drop if self.training else 0.
        x = self.scaled_dot_product_attention(q, k, v, dropout_p=attn_drop)
        x = self.proj(x.transpose(1, 2).reshape(n, length, self.embed_dims))
        return self.out_drop(self.gamma1(self.proj_drop(x)))


class RopeEncoderLayer(BaseModule):
    """MMPreTrain's ``TransformerEncoderLayer`` with RoPE attention.

    Args:
        embed_dims (int): Width of the tokens.
        num_heads (int): Number of attention heads.
        feedforward_channels (int): Hidden width of the MLP.
        qkv_bias (bool): Bias in the qkv projection. Defaults to True.
        act_cfg (dict): MLP activation. Defaults to ``dict(type='GELU')``.
        norm_cfg (dict): Defaults to ``dict(type='LN', eps=1e-5)``.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 feedforward_channels: int,
                 qkv_bias: bool = True,
                 act_cfg: dict = dict(type='GELU'),
                 norm_cfg: dict = dict(type='LN', eps=1e-5),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.ln1 = build_norm_layer(norm_cfg, embed_dims)
        self.attn = RopeMultiheadAttention(
            embed_dims=embed_dims, num_heads=num_heads, qkv_bias=qkv_bias)
        self.ln2 = build_norm_layer(norm_cfg, embed_dims)
        self.ffn = FFN(
            embed_dims=embed_dims,
            feedforward_channels=feedforward_channels,
            act_cfg=copy.deepcopy(act_cfg))

    def forward(self, x: torch.Tensor, rope: Rope) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), rope)
        return self.ffn(self.ln2(x), identity=x)


@MODELS.register_module()
class PEVisionTransformer(BaseBackbone):
    """The image tower of PE-Core (the CLIP model's ``visual_proj`` follows).

    Args:
        arch (str | dict): ``'base'``, ``'large'`` or a dict with
            ``embed_dims``, ``num_layers``, ``num_heads`` and
            ``feedforward_channels``. Defaults to ``'base'``.
        img_size (int | tuple): Input size. Defaults to 224.
        patch_size (int): Patch side. Defaults to 16.
        rope_ref_grid (Sequence[int], optional): See :func:`rope_2d`.
            Defaults to the patch grid.
        rope_offset (float): See :func:`rope_2d`. Defaults to 1.0.
        rope_temperature (float): See :func:`rope_2d`. Defaults to 10000.
        attn_pool_cfg (dict, optional): Arguments of ``AttentionPool`` but
            ``in_features``. Defaults to ``dict(num_heads=8,
            mlp_ratio=4.0)`` with the tower's norm and activation.
        norm_cfg (dict): Defaults to ``dict(type='LN', eps=1e-5)``.
        act_cfg (dict): MLP activation. Defaults to ``dict(type='GELU')``.
        out_type (str): ``'attn_pool'`` (the pooled ``(N, C)`` feature),
            ``'raw'`` (all tokens ``(N, 1 + H * W, C)``) or ``'featmap'``
            (patch tokens ``(N, C, H, W)``). Defaults to ``'attn_pool'``.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """
    arch_zoo = {
        'base':
        dict(
            embed_dims=768,
            num_layers=12,
            num_heads=12,
            feedforward_channels=3072),
        'large':
        dict(
            embed_dims=1024,
            num_layers=24,
            num_heads=16,
            feedforward_channels=4096),
    }
    OUT_TYPES = ('attn_pool', 'raw', 'featmap')
    num_extra_tokens = 1

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 img_size: Union[int, Sequence[int]] = 224,
                 patch_size: int = 16,
                 rope_ref_grid: Optional[Sequence[int]] = None,
                 rope_offset: float = 1.0,
                 rope_temperature: float = 10000.0,
                 attn_pool_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='LN', eps=1e-5),
                 act_cfg: dict = dict(type='GELU'),
                 out_type: str = 'attn_pool',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if isinstance(arch, str):
            if arch not in self.arch_zoo:
                raise ValueError(f'arch must be one of {sorted(self.arch_zoo)}'
                                 f' or a dict, got {arch!r}')
            arch = self.arch_zoo[arch]
        if out_type not in self.OUT_TYPES:
            raise ValueError(f'out_type must be one of {self.OUT_TYPES}, got '
                             f'{out_type!r}')
        self.embed_dims = arch['embed_dims']
        self.num_layers = arch['num_layers']
        self.out_type = out_type
        self.img_size = to_2tuple(img_size)
        # No patch bias: the norm before the blocks follows (as in CLIP).
        self.patch_embed = PatchEmbed(
            in_channels=3,
            input_size=self.img_size,
            embed_dims=self.embed_dims,
            conv_type='Conv2d',
            kernel_size=patch_size,
            stride=patch_size,
            bias=False)
        self.patch_resolution = self.patch_embed.init_out_size
        num_patches = self.patch_resolution[0] * self.patch_resolution[1]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims))
        self.pos_embed = nn.Parameter(
            torch.zeros(1, num_patches + 1, self.embed_dims))
        self.pre_norm = build_norm_layer(norm_cfg, self.embed_dims)
        self.rope = RotaryEmbedding2D(self.embed_dims // arch['num_heads'],
                                      self.patch_resolution, rope_ref_grid,
                                      rope_offset, rope_temperature)
        self.layers = ModuleList([
            RopeEncoderLayer(
                self.embed_dims,
                arch['num_heads'],
                arch['feedforward_channels'],
                act_cfg=act_cfg,
                norm_cfg=norm_cfg) for _ in range(self.num_layers)
        ])
        self.ln1 = build_norm_layer(norm_cfg, self.embed_dims)
        self.attn_pool = None
        if out_type == 'attn_pool':
            pool_cfg = dict(
                num_heads=8,
                mlp_ratio=4.0,
                norm_cfg=copy.deepcopy(norm_cfg),
                act_cfg=copy.deepcopy(act_cfg))
            pool_cfg.update(attn_pool_cfg or {})
            self.attn_pool = AttentionPool(self.embed_dims, **pool_cfg)

    def init_weights(self) -> None:
        super().init_weights()
        if not (isinstance(self.init_cfg, dict)
                and self.init_cfg.get('type') == 'Pretrained'):
            trunc_normal_(self.pos_embed, std=0.02)
            trunc_normal_(self.cls_token, std=0.02)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        """One output of images ``(N, 3, H, W)``, see ``out_type``."""
        x, grid = self.patch_embed(x)
        cls_token = self.cls_token.expand(x.size(0), -1, -1)
        x = torch.cat([cls_token, x], dim=1)
        x = x + resize_pos_embed(
            self.pos_embed,
            self.patch_resolution,
            grid,
            mode='bicubic',
            num_extra_tokens=self.num_extra_tokens)
        x = self.pre_norm(x)
        rope = self.rope(grid)
        for layer in self.layers:
            x = layer(x, rope)
        x = self.ln1(x)
        if self.out_type == 'attn_pool':
            return (self.attn_pool(x), )
        if self.out_type == 'featmap':
            x = x[:, self.num_extra_tokens:].reshape(x.size(0), *grid, -1)
            return (x.permute(0, 3, 1, 2), )
        return (x, )
