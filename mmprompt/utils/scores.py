# Copyright (c) mmprompt contributors. All rights reserved.
"""The one rule on scores: a NaN or an infinite score is never written (it
prints as a confident ``nan% cat``); models check their logits where they
turn them into predictions."""
import torch

from .errors import NonFiniteScoresError


def check_finite_scores(scores: torch.Tensor,
                        context: str = '') -> torch.Tensor:
    """Return ``scores`` if every value is finite, else refuse them,
    naming how many images have a NaN or infinite one.

    Args:
        scores (torch.Tensor): Scores ``(N, K)`` or ``(K, )``.
        context (str): Put before the message, e.g. ``'cannot calibrate
            thresholds: '``. Defaults to ``''``.
    """
    finite = torch.isfinite(scores)
    if bool(finite.all()):
        return scores
    bad = 1 if scores.dim() < 2 else int(
        (~finite.flatten(1).all(dim=1)).sum())
    raise NonFiniteScoresError(
        f'{context}the model produced non-finite scores (NaN/Inf) for {bad} '
        'image(s); the weights or inputs are broken')
