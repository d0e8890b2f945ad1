# Copyright (c) mmprompt contributors. All rights reserved.
"""Swin layout helpers of the RAM converter: Microsoft's layout
(``microsoft/Swin-Transformer``, MIT licence) -> MMPreTrain's."""
import torch

from .common import ConverterError


def swin_unfold_reduction(weight: torch.Tensor) -> torch.Tensor:
    """Reorder a PatchMerging ``reduction`` weight for ``nn.Unfold`` input.

    Microsoft concatenates the 2x2 neighbours as ``[x(0,0), x(1,0), x(0,1),
    x(1,1)]`` (``(row, col)``), C channels each; ``nn.Unfold`` is
    channel-major, index ``c * 4 + row * 2 + col``.

    Args:
        weight (Tensor): ``(out, 4C)`` in the Microsoft layout.
    """
    out_ch, in_ch = weight.shape
    # Unfold's offsets (0,0), (0,1), (1,0), (1,1) are Microsoft's 0, 2, 1, 3.
    w = weight.reshape(out_ch, 4, in_ch // 4)[:, [0, 2, 1, 3], :]
    return w.transpose(1, 2).reshape(out_ch, in_ch).contiguous()


def swin_unfold_norm(vector: torch.Tensor) -> torch.Tensor:
    """Reorder a PatchMerging ``norm`` weight or bias like
    :func:`swin_unfold_reduction`.

    Args:
        vector (Tensor): ``(4C,)`` in the Microsoft layout.
    """
    return swin_unfold_reduction(vector[None])[0]


def swin_relative_position_index(window_size: int) -> torch.Tensor:
    """The ``(ws * ws, ws * ws)`` int64 ``relative_position_index`` of a
    Swin window attention (Microsoft's formula, MMPreTrain's values).

    Args:
        window_size (int): Side of the window.
    """
    coords = torch.arange(window_size)
    rows = coords.repeat_interleave(window_size)
    cols = coords.repeat(window_size)
    rel_rows = rows[:, None] - rows[None, :] + window_size - 1
    rel_cols = cols[:, None] - cols[None, :] + window_size - 1
    return rel_rows * (2 * window_size - 1) + rel_cols


def swin_window_size(bias_table: torch.Tensor) -> int:
    """Window side ``ws`` of a Swin ``relative_position_bias_table``.

    Args:
        bias_table (Tensor): ``((2 ws - 1) ** 2, heads)``.
    """
    side = round(bias_table.shape[0]**0.5)
    if side * side != bias_table.shape[0] or side % 2 == 0:
        raise ConverterError(
            'relative_position_bias_table has '
            f'{bias_table.shape[0]} rows, not (2 * window - 1) ** 2')
    return (side + 1) // 2
