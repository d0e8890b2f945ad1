# Copyright (c) mmprompt contributors. All rights reserved.
"""Swin Transformer layout helpers of the RAM converter.

RAM's image encoder is a Swin-L in Microsoft's layout
(``microsoft/Swin-Transformer``, MIT licence); mmprompt runs MMPreTrain's
``SwinTransformer``, whose ``PatchMerging`` feeds ``nn.Unfold`` output to its
reduction and which keeps ``relative_position_index`` as a persistent
buffer. These transforms bridge the two; :mod:`mmprompt.converters.ram`
names them in its rules.
"""
import torch

from .common import ConverterError


def swin_unfold_reduction(weight: torch.Tensor) -> torch.Tensor:
    """Reorder a PatchMerging ``reduction`` weight for ``nn.Unfold`` input.

    The Microsoft layout concatenates the 2x2 neighbours on channels as
    ``[x(0,0), x(1,0), x(0,1), x(1,1)]`` (offsets ``(row, col)``), one block
    of C channels each. MMPreTrain's PatchMerging uses ``nn.Unfold``, whose
    output is channel-major: index ``c * 4 + row * 2 + col``. The input
    columns are permuted accordingly.

    Args:
        weight (Tensor): ``(out, 4C)`` in the Microsoft layout.

    Returns:
        Tensor: ``(out, 4C)`` in MMPreTrain's layout.
    """
    out_ch, in_ch = weight.shape
    # Microsoft block b holds offset (b % 2, b // 2); unfold orders offsets
    # by row * 2 + col, i.e. Microsoft blocks [0, 2, 1, 3], channel-major.
    w = weight.reshape(out_ch, 4, in_ch // 4)[:, [0, 2, 1, 3], :]
    return w.transpose(1, 2).reshape(out_ch, in_ch).contiguous()


def swin_unfold_norm(vector: torch.Tensor) -> torch.Tensor:
    """Reorder a PatchMerging ``norm`` weight or bias like
    :func:`swin_unfold_reduction`.

    Args:
        vector (Tensor): ``(4C,)`` in the Microsoft layout.

    Returns:
        Tensor: ``(4C,)`` in MMPreTrain's layout.
    """
    in_ch = vector.shape[0]
    v = vector.reshape(4, in_ch // 4)[[0, 2, 1, 3], :]
    return v.transpose(0, 1).reshape(in_ch).contiguous()


def swin_relative_position_index(window_size: int) -> torch.Tensor:
    """The ``relative_position_index`` buffer of a Swin window attention.

    Entry ``(i, j)`` is ``(hi - hj + ws - 1) * (2 ws - 1) + (wi - wj + ws -
    1)`` for the row-major positions ``i = (hi, wi)`` and ``j = (hj, wj)``
    of a ``ws x ws`` window: Microsoft's formula, and the values of
    MMPreTrain's (persistent) buffer.

    Args:
        window_size (int): Side of the window.

    Returns:
        torch.Tensor: ``(ws * ws, ws * ws)``, int64.
    """
    coords = torch.arange(window_size)
    rows = coords.repeat_interleave(window_size)
    cols = coords.repeat(window_size)
    rel_rows = rows[:, None] - rows[None, :] + window_size - 1
    rel_cols = cols[:, None] - cols[None, :] + window_size - 1
    return rel_rows * (2 * window_size - 1) + rel_cols


def swin_window_size(bias_table: torch.Tensor) -> int:
    """Window side of a Swin ``relative_position_bias_table``.

    Args:
        bias_table (Tensor): ``((2 ws - 1) ** 2, heads)``.

    Returns:
        int: ``ws``.

    Raises:
        ConverterError: If the first dimension is not an odd square.
    """
    side = round(bias_table.shape[0]**0.5)
    if side * side != bias_table.shape[0] or side % 2 == 0:
        raise ConverterError(
            'relative_position_bias_table has '
            f'{bias_table.shape[0]} rows, not (2 * window - 1) ** 2')
    return (side + 1) // 2
