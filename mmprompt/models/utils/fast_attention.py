# Copyright (c) mmprompt contributors. All rights reserved.
"""Drop-in SDPA for MMPreTrain's Swin window attention, without forking it.

MMPreTrain's ``VisionTransformer`` already calls
``F.scaled_dot_product_attention``; its ``WindowMSA`` (Swin) still builds the
attention matrix by hand. :func:`enable_sdpa` swaps the class of every
``WindowMSA`` instance of a model for :class:`SDPAWindowMSA`, which has the
same parameters and buffers (checkpoints are unchanged) and hands the
relative-position bias and the shift mask to SDPA as one additive mask, so
PyTorch can pick its fused (memory-efficient) kernel on a GPU.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.utils.attention import WindowMSA


class SDPAWindowMSA(WindowMSA):
    """``WindowMSA`` whose forward runs ``F.scaled_dot_product_attention``.

    Same arguments, parameters and buffers as MMPreTrain's ``WindowMSA``;
    use :func:`enable_sdpa` rather than building it directly.
    """

    def relative_position_bias(self) -> torch.Tensor:
        """The bias added to the attention logits.

        Returns:
            torch.Tensor: ``(heads, N, N)`` with ``N = Wh * Ww``.
        """
        n = self.window_size[0] * self.window_size[1]
        bias = self.relative_position_bias_table[
            self.relative_position_index.view(-1)].view(n, n, -1)
        return bias.permute(2, 0, 1)

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
        bias = self.relative_position_bias().to(q.dtype)
        if mask is None:
            attn_mask = bias.unsqueeze(0)
        else:
            # Shifted windows: each window has its own mask. Fold the
            # windows into the head dimension, (B, windows * heads, N, C'),
            # so the mask broadcasts over the batch and SDPA keeps 4-D
            # inputs (its fused CPU kernel takes nothing else; 5-D inputs
            # fall back to the unfused math, as slow as WindowMSA's).
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
        # The heads side by side, (B', N, heads * C'): a concatenation
        # rather than transpose + reshape, whose view / copy choice depends
        # on SDPA's output strides, which differ between its CPU kernels and
        # its traced decomposition (torch.export / ONNX with a dynamic
        # batch fails on it). Same values, same one copy.
        out = torch.cat(out.unbind(1), dim=-1)
        return self.proj_drop(self.proj(out))


def enable_sdpa(model: nn.Module) -> int:
    """Switch every MMPreTrain ``WindowMSA`` in ``model`` to SDPA, in place.

    Parameters, buffers and state-dict keys stay as they are.

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
