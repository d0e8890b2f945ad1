# Copyright (c) mmprompt contributors. All rights reserved.
"""MMPreTrain's ViT whose last block runs for the class token alone: the
patch tokens it outputs are never read, so its query, out-projection and MLP
run on the class token only (about ``1 / num_layers`` of the compute)."""
from typing import Tuple

import torch
import torch.nn.functional as F
from mmpretrain.models import VisionTransformer
from mmpretrain.models.backbones.vision_transformer import \
    TransformerEncoderLayer
from mmpretrain.models.utils import resize_pos_embed

from mmprompt.registry import MODELS


def class_token_block(layer: TransformerEncoderLayer,
                      x: torch.Tensor) -> torch.Tensor:
    """``layer(x)[:, :1]`` of MMPreTrain's pre-norm block, computed at the
    first token only: ``(N, L, C)`` -> ``(N, 1, C)``."""
    attn = layer.attn
    n, length, width = x.shape
    heads, dims = attn.num_heads, attn.head_dims
    y = layer.ln1(x)
    weight, bias = attn.qkv.weight, attn.qkv.bias
    q = F.linear(y[:, :1], weight[:width],
                 None if bias is None else bias[:width])
    kv = F.linear(y, weight[width:], None if bias is None else bias[width:])
    q = q.reshape(n, 1, heads, dims).transpose(1, 2)
    k, v = kv.reshape(n, length, 2, heads, dims).permute(2, 0, 3, 1, 4)
    out = attn.scaled_dot_product_attention(q, k, v, dropout_p=0.)
    out = attn.proj(out.transpose(1, 2).reshape(n, 1, width))
    x = x[:, :1] + attn.out_drop(attn.gamma1(attn.proj_drop(out)))
    return layer.ffn(layer.ln2(x), identity=x)


@MODELS.register_module()
class CLIPVisionTransformer(VisionTransformer):
    """MMPreTrain's ``VisionTransformer`` (same arguments, parameters and
    outputs); with ``out_type='cls_token'`` and only the last block's output
    asked for, that block runs at the class token alone."""

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        """MMPreTrain's ``forward`` of images ``x``, ``(N, 3, H, W)``."""
        if not (self.out_type == 'cls_token'
                and list(self.out_indices) == [len(self.layers) - 1]
                and type(self.layers[-1]) is TransformerEncoderLayer):
            return super().forward(x)
        n = x.shape[0]
        x, patch_resolution = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(n, -1, -1), x), dim=1)
        x = x + resize_pos_embed(
            self.pos_embed,
            self.patch_resolution,
            patch_resolution,
            mode=self.interpolate_mode,
            num_extra_tokens=self.num_extra_tokens)
        x = self.pre_norm(self.drop_after_pos(x))
        for layer in self.layers[:-1]:
            x = layer(x)
        x = class_token_block(self.layers[-1], x)
        if self.final_norm:
            x = self.ln1(x)
        return (x[:, 0], )
