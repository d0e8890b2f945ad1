# Copyright (c) mmprompt contributors. All rights reserved.
"""Drop-in SDPA for MMPreTrain's Swin window attention (``WindowMSA`` builds
the attention matrix by hand), with the same parameters and buffers."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.utils.attention import WindowMSA


class SDPAWindowMSA(WindowMSA):
    """``WindowMSA`` whose forward runs ``F.scaled_dot_product_attention``,
    with the bias and shift mask as one additive mask; see
    :func:`enable_sdpa`."""

    def forward(self,
                x: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Attention inside each window.

        Args:
            x (torch.Tensor): ``(num_windows * B, N, C)``.
            mask (torch.Tensor, optional): ``(num_windows, N, N)`` with
                values in ``(-inf, 0]`` (shifted windows). Defaults to None.

        Returns:
            torch.Tensor: ``(num_windows * B, N, C)``.
        """
        batch_windows, n, c = x.shape
        heads = self.num_heads
        qkv = self.qkv(x).reshape(batch_windows, n, 3, heads, c // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        # Scale q first, as WindowMSA does, so fp32 results match it.
        q = q * self.scale
        size = self.window_size[0] * self.window_size[1]
        bias = self.relative_position_bias_table[
            self.relative_position_index.view(-1)].view(size, size, -1)
        bias = bias.permute(2, 0, 1).to(q.dtype)  # (heads, N, N)
        if mask is None:
            attn_mask = bias.unsqueeze(0)
        else:
            # Each window has its own mask: fold windows into heads,
            # (B, windows * heads, N, C'), as SDPA's fused CPU kernel takes
            # 4-D inputs only.
            num_windows = mask.shape[0]
            q, k, v = (
                t.reshape(-1, num_windows * heads, n, c // heads)
                for t in (q, k, v))
            attn_mask = (bias.unsqueeze(0) +
                         mask.to(q.dtype).unsqueeze(1)).reshape(
                             1, num_windows * heads, n, n)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.attn_drop.p if self.training else 0.,
            scale=1.0)
        out = out.reshape(batch_windows, heads, n, c // heads)
        # Heads side by side by concatenation: transpose + reshape depends
        # on SDPA's output strides, which break a dynamic-batch ONNX export.
        out = torch.cat(out.unbind(1), dim=-1)
        return self.proj_drop(self.proj(out))


def enable_sdpa(model: nn.Module) -> int:
    """Switch every MMPreTrain ``WindowMSA`` in ``model`` to SDPA, in place.

    Args:
        model (nn.Module): Any module tree (a Swin backbone, a RAM model).

    Returns:
        int: How many attention modules were switched.
    """
    count = 0
    for module in model.modules():
        if type(module) is WindowMSA:
            module.__class__ = SDPAWindowMSA
            count += 1
    return count
