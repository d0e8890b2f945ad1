# Copyright (c) mmprompt contributors. All rights reserved.
"""MMPreTrain's ViT whose last block runs for the class token alone.

CLIP's image tower (OpenAI's, open_clip's) returns the class token after
the last block and ``ln_post``; the patch tokens that block outputs are
never read. Here the last block takes its keys and values from every token
but its query, out-projection and MLP from the class token only, which
saves about ``1 / num_layers`` of the tower's compute with the same result
up to float rounding (the text tower's last block does the same at its
pooled token, see :mod:`mmprompt.models.clip.text_encoder`).
"""
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
    """``layer(x)[:, :1]``: the block's output at the first token only.

    Args:
        layer (TransformerEncoderLayer): MMPreTrain's pre-norm block with
            its ``MultiheadAttention``.
        x (torch.Tensor): Tokens, ``(N, L, C)``, the class token first.

    Returns:
        torch.Tensor: ``(N, 1, C)``.
    """
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
    """MMPreTrain's ``VisionTransformer``; with ``out_type='cls_token'`` and
    only the last block's output asked for, that block runs at the class
    token alone (see the module docstring).

    Arguments, parameter names and outputs are MMPreTrain's, so OpenAI's
    and open_clip's converted checkpoints load as they are.
    """

    def _pools_class_token(self) -> bool:
        last = self.layers[-1]
        return (self.out_type == 'cls_token'
                and list(self.out_indices) == [len(self.layers) - 1]
                and type(last) is TransformerEncoderLayer)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        """Features of images, as MMPreTrain's ``forward``.

        Args:
            x (torch.Tensor): Images, ``(N, 3, H, W)``.

        Returns:
            tuple[torch.Tensor]: The outputs of ``out_indices``; with the
            class token pooled from the last block, one ``(N, C)`` tensor.
        """
        if not self._pools_class_token():
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
