# Copyright (c) mmprompt contributors. All rights reserved.
"""The one rule on scores: a NaN or an infinite score is never written.

NaN weights, or inputs that overflow a half-precision tower, make scores
that print as confident answers (``50.00% cat``, ``nan% cat``) and write
``NaN`` into JSON lines. The models check their logits with
:func:`check_finite_scores` where they turn them into predictions
(:func:`mmprompt.models.clip.clip.logits_to_samples`, ``RAM.predict``), so
every tool, inferencer and metric downstream sees finite scores or an
error; threshold calibration checks the scores it is given.
"""
import torch

from .errors import NonFiniteScoresError


def check_finite_scores(scores: torch.Tensor,
                        context: str = '') -> torch.Tensor:
    """Return ``scores`` if every value is finite, else refuse them.

    Args:
        scores (torch.Tensor): Logits or scores, one row per image
            ``(N, K)`` (or ``(K, )`` for one image).
        context (str): What refuses them, put before the message, e.g.
            ``'cannot calibrate thresholds: '``. Defaults to ``''``.

    Returns:
        torch.Tensor: ``scores``, unchanged.

    Raises:
        NonFiniteScoresError: Naming how many images have a NaN or
            infinite value.
    """
    finite = torch.isfinite(scores)
    if bool(finite.all()):
        return scores
    bad = 1 if scores.dim() < 2 else int(
        (~finite.flatten(1).all(dim=1)).sum())
    raise NonFiniteScoresError(
        f'{context}the model produced non-finite scores (NaN/Inf) for {bad} '
        'image(s); the weights or inputs are broken')
