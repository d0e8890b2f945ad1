# Copyright (c) mmprompt contributors. All rights reserved.
"""Tagging metrics of the RAM papers, from the tags the model selected (not
from one threshold, as MMPreTrain's ``MultiLabelMetric``)."""
from typing import List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmpretrain.evaluation import AveragePrecision

from mmprompt.registry import METRICS

AVERAGE_OVER = ('present', 'all')


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den``, 0 where ``den`` is 0."""
    num, den = num.double(), den.double()
    return torch.where(den > 0, num / den.clamp(min=1), torch.zeros_like(num))


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def _check_average_over(average_over: str) -> None:
    if average_over not in AVERAGE_OVER:
        raise ValueError(f'average_over must be one of {AVERAGE_OVER}, got '
                         f'{average_over!r}')


def tagging_metrics(scores: torch.Tensor,
                    selected: torch.Tensor,
                    target: torch.Tensor,
                    average_over: str = 'present') -> dict:
    """Tagging metrics of a set of images, in percent: ``mAP``; ``CP`` /
    ``CR`` / ``CF1``, class means (a class never selected has precision 0,
    as in RAM); ``OP`` / ``OR`` / ``OF1`` over all (image, tag) pairs.

    Args:
        scores (torch.Tensor): Scores, ``(N, K)``, for mAP.
        selected (torch.Tensor): Boolean ``(N, K)``: the selected tags.
        target (torch.Tensor): Boolean ``(N, K)``: the true tags.
        average_over (str): ``'present'`` classes (so a subset is not
            penalised) or ``'all'`` (RAM's). Defaults to ``'present'``.
    """
    _check_average_over(average_over)
    if not scores.shape == selected.shape == target.shape or \
            scores.dim() != 2:
        raise ValueError('scores, selected and target must all be (N, K), '
                         f'got {tuple(scores.shape)}, '
                         f'{tuple(selected.shape)}, {tuple(target.shape)}')
    selected, target = selected.bool(), target.bool()
    tp = (selected & target).sum(dim=0)
    num_selected = selected.sum(dim=0)
    num_true = target.sum(dim=0)
    classes = num_true > 0 if average_over == 'present' else \
        torch.ones_like(num_true, dtype=torch.bool)
    if not bool(classes.any()):
        raise ValueError('no class has a true tag: nothing to average')
    precision = _ratio(tp, num_selected)[classes].mean().item() * 100
    recall = _ratio(tp, num_true)[classes].mean().item() * 100
    ap = AveragePrecision.calculate(
        scores.float(), target.long(), average=None)
    overall_p = _ratio(tp.sum(), num_selected.sum()).item() * 100
    overall_r = _ratio(tp.sum(), num_true.sum()).item() * 100
    return dict(
        mAP=ap.double()[classes].mean().item(),
        CP=precision,
        CR=recall,
        CF1=_f1(precision, recall),
        OP=overall_p,
        OR=overall_r,
        OF1=_f1(overall_p, overall_r))


@METRICS.register_module()
class TaggingMetric(BaseMetric):
    """:func:`tagging_metrics` of a tagging model (``tagging/mAP``, ...),
    over the columns the dataset's ``model_indices`` pick, if any.

    Args:
        thr (float, optional): Select tags by ``pred_score > thr`` instead
            of the model's own selection. Defaults to None.
        average_over (str): See :func:`tagging_metrics`. Defaults to
            ``'present'``.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Defaults to ``'tagging'``.
    """
    default_prefix: Optional[str] = 'tagging'

    def __init__(self,
                 thr: Optional[float] = None,
                 average_over: str = 'present',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if thr is not None and not 0 <= thr <= 1:
            raise ValueError(f'thr must lie in [0, 1], got {thr}')
        _check_average_over(average_over)
        self.thr = thr
        self.average_over = average_over

    def _columns(self, num_scores: int) -> Optional[torch.Tensor]:
        """The model's index of each class, or None for the identity."""
        meta = self.dataset_meta or {}
        classes = meta.get('classes')
        if classes is None:
            raise ValueError('TaggingMetric needs the dataset classes '
                             '(dataset_meta["classes"])')
        indices = meta.get('model_indices')
        if indices is None:
            if num_scores != len(classes):
                raise ValueError(
                    f'the model scores {num_scores} tags but the dataset has '
                    f'{len(classes)} classes; give the dataset the model '
                    'tag list (model_tag_list) or the model these classes '
                    'as open-set categories')
            return None
        if len(indices) != len(classes) or max(indices) >= num_scores:
            raise ValueError(
                f'model_indices ({len(indices)}, max {max(indices)}) do not '
                f'fit {len(classes)} classes and {num_scores} model tags')
        return torch.as_tensor(indices, dtype=torch.long)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep each sample's ``pred_score``, selected (``pred_label``) and
        true (``gt_label``) classes."""
        for sample in data_samples:
            score = sample['pred_score'].detach().float().cpu()
            if self.thr is None:
                selected = torch.zeros_like(score, dtype=torch.bool)
                selected[sample['pred_label'].cpu().long()] = True
            else:
                selected = score > self.thr
            columns = self._columns(score.numel())
            if columns is not None:
                score, selected = score[columns], selected[columns]
            target = torch.zeros_like(selected)
            target[sample['gt_label'].cpu().long()] = True
            self.results.append((score, selected, target))

    def compute_metrics(self, results: List[tuple]) -> dict:
        """:func:`tagging_metrics` of ``(score, selected, target)``s."""
        scores, selected, target = (torch.stack(r) for r in zip(*results))
        return tagging_metrics(scores, selected, target, self.average_over)
