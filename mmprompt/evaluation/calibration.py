# Copyright (c) mmprompt contributors. All rights reserved.
"""Per-tag threshold calibration on a labelled tagging set; the figures
before and after are ``tools/test.py``'s
(:func:`~mmprompt.evaluation.tagging_metrics`)."""
from typing import Dict, List, Optional, Sequence

import torch

from mmprompt.utils.errors import InvalidInputError
from mmprompt.utils.options import CALIBRATION_MODES
from mmprompt.utils.scores import check_finite_scores
from .tagging_metric import _ratio, tagging_metrics


def _f1(tp: torch.Tensor, selected: torch.Tensor,
        positives: torch.Tensor) -> torch.Tensor:
    """Per-tag F1 from float64 counts (0 where nothing is selected nor
    true)."""
    return _ratio(2 * tp, selected + positives)


def _cuts(scores: torch.Tensor, target: torch.Tensor) -> dict:
    """``thr``, ``tp``, ``selected``, ``valid``, each ``(N, K)``: row
    ``j - 1`` selects each tag's ``j`` highest scores."""
    ordered, order = scores.sort(dim=0, descending=True)
    hits = target.gather(0, order).double()
    tp = hits.cumsum(0)
    n = scores.size(0)
    selected = torch.arange(1, n + 1, dtype=torch.float64)[:, None]
    selected = selected.expand_as(tp)
    below = torch.cat([ordered[1:], ordered[-1:] * 0], dim=0)
    # In the scores' dtype, as the model compares them; where rounding
    # lands the midpoint on the selected score, the next one down does.
    thr = (ordered + below) / 2
    thr = torch.where(thr < ordered, thr, below)
    # A cut exists only between distinct scores, and above 0.
    valid = (ordered > below) & (thr >= 0)
    return dict(thr=thr, tp=tp, selected=selected, valid=valid)


def calibrate_thresholds(scores: torch.Tensor,
                         target: torch.Tensor,
                         current: torch.Tensor,
                         mode: str = 'f1',
                         target_precision: Optional[float] = None,
                         min_support: int = 1,
                         never: Optional[torch.Tensor] = None
                         ) -> Dict[str, torch.Tensor]:
    """New per-tag thresholds from labelled scores.

    The candidates cut between consecutive distinct scores of a tag (the
    midpoint; half the lowest score to select all); ties go to the highest
    threshold. A tag kept at ``current`` says why.

    Args:
        scores (torch.Tensor): Sigmoid scores, ``(N, K)``.
        target (torch.Tensor): Boolean ``(N, K)``: the true tags.
        current (torch.Tensor): The thresholds in use, ``(K, )``.
        mode (str): ``'f1'`` (best F1) or ``'precision'`` (highest recall
            reaching ``target_precision``). Defaults to ``'f1'``.
        target_precision (float, optional): In ``(0, 1]``. Defaults to None.
        min_support (int): Fewest positives to calibrate a tag. Defaults to 1.
        never (torch.Tensor, optional): Boolean ``(K, )``: tags never
            selected (RAM's deleted ones), not calibrated. Defaults to None.

    Returns:
        dict: ``thresholds`` ``(K, )`` in the scores' dtype,
        ``calibrated`` (bool, ``(K, )``), ``support`` ``(K, )`` and
        ``reason`` (list of str, ``''`` when calibrated).
    """
    if mode not in CALIBRATION_MODES:
        raise InvalidInputError(
            f'mode must be one of {CALIBRATION_MODES}, got {mode!r}')
    if mode == 'precision' and not (target_precision is not None
                                    and 0 < target_precision <= 1):
        raise InvalidInputError('mode precision needs a target precision in '
                                f'(0, 1], got {target_precision}')
    if min_support < 1:
        raise InvalidInputError(f'min_support must be >= 1, got {min_support}')
    if scores.dim() != 2 or scores.shape != target.shape or \
            current.shape != scores.shape[1:]:
        raise InvalidInputError(
            f'scores {tuple(scores.shape)}, target {tuple(target.shape)} '
            f'and thresholds {tuple(current.shape)} do not fit')
    check_finite_scores(scores, 'cannot calibrate thresholds: ')
    target = target.bool()
    support = target.sum(dim=0)
    if not bool(support.any()):
        raise InvalidInputError('no tag has a positive image: nothing to '
                                'calibrate on')
    cuts = _cuts(scores, target)
    positives = support.double()[None].expand_as(cuts['tp'])
    if mode == 'f1':
        value = _f1(cuts['tp'], cuts['selected'], positives)
    else:
        precision = cuts['tp'] / cuts['selected']
        # The highest recall (true positives) whose precision is reached.
        value = torch.where(precision >= target_precision - 1e-12,
                            cuts['tp'], torch.zeros_like(precision))
    value = torch.where(cuts['valid'], value, torch.full_like(value, -1.0))
    # Highest value; among equal ones the first row (highest threshold).
    best = value.argmax(dim=0)
    cols = torch.arange(scores.size(1))
    best_value = value[best, cols]
    new = cuts['thr'][best, cols]
    reason: List[str] = []
    for k in range(scores.size(1)):
        if never is not None and bool(never[k]):
            reason.append('deleted tag, never selected')
        elif int(support[k]) == 0:
            reason.append('no positives')
        elif int(support[k]) < min_support:
            reason.append(f'support {int(support[k])} < {min_support}')
        elif best_value[k] <= 0:
            reason.append(f'precision {target_precision} not reached'
                          if mode == 'precision' else 'F1 is 0 at every cut')
        else:
            reason.append('')
    calibrated = torch.tensor([not r for r in reason], dtype=torch.bool)
    thresholds = torch.where(calibrated, new, current.to(new.dtype))
    return dict(
        thresholds=thresholds,
        never=never,
        calibrated=calibrated,
        support=support,
        reason=reason)


def select(scores: torch.Tensor,
           thresholds: torch.Tensor,
           never: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``score > threshold``, as RAM selects, with ``never`` tags off."""
    selected = scores > thresholds.to(scores.dtype)
    if never is not None:
        selected[:, never.bool()] = False
    return selected


def per_tag_f1(scores: torch.Tensor,
               target: torch.Tensor,
               thresholds: torch.Tensor,
               never: Optional[torch.Tensor] = None) -> torch.Tensor:
    """F1 of each tag with ``score > threshold``, ``(K, )`` float64."""
    selected = select(scores, thresholds, never)
    target = target.bool()
    tp = (selected & target).sum(0).double()
    return _f1(tp, selected.sum(0).double(), target.sum(0).double())


def calibration_report(names: Sequence[str], scores: torch.Tensor,
                       target: torch.Tensor, before: torch.Tensor,
                       result: Dict[str, torch.Tensor]) -> dict:
    """``tags`` (a dict per tag) and ``overall`` (``before`` / ``after``
    metrics): the figures before and after, as plain data.

    Args:
        names (Sequence[str]): The ``K`` tag names.
        scores (torch.Tensor): ``(N, K)``.
        target (torch.Tensor): ``(N, K)`` boolean.
        before (torch.Tensor): The old thresholds, ``(K, )``.
        result (dict): From :func:`calibrate_thresholds`.
    """
    after = result['thresholds']
    never = result.get('never')
    f1_before = per_tag_f1(scores, target, before, never) * 100
    f1_after = per_tag_f1(scores, target, after, never) * 100
    tags = [
        dict(
            tag=name,
            old_threshold=float(before[k]),
            new_threshold=float(after[k]),
            support=int(result['support'][k]),
            f1_before=float(f1_before[k]),
            f1_after=float(f1_after[k]),
            calibrated=bool(result['calibrated'][k]),
            reason=result['reason'][k]) for k, name in enumerate(names)
    ]
    overall = {
        key: tagging_metrics(scores, select(scores, thr, never), target)
        for key, thr in (('before', before), ('after', after))
    }
    return dict(tags=tags, overall=overall)


def format_report(report: dict) -> str:
    """The report as a text table."""
    width = max([len(t['tag']) for t in report['tags']] + [3])
    lines = [
        f'{"tag":<{width}}  old_thr  new_thr  support  F1_before  F1_after'
    ]
    for t in report['tags']:
        line = (f"{t['tag']:<{width}}  {t['old_threshold']:7.4f}  "
                f"{t['new_threshold']:7.4f}  {t['support']:7d}  "
                f"{t['f1_before']:9.2f}  {t['f1_after']:8.2f}")
        if t['reason']:
            line += f"  kept: {t['reason']}"
        lines.append(line)
    for key in ('before', 'after'):
        m = report['overall'][key]
        lines.append(f"overall {key}: CF1 {m['CF1']:.2f}  OF1 "
                     f"{m['OF1']:.2f}  CP {m['CP']:.2f}  CR {m['CR']:.2f}  "
                     f"OP {m['OP']:.2f}  OR {m['OR']:.2f}")
    return '\n'.join(lines)
