# Copyright (c) mmprompt contributors. All rights reserved.
"""Mean per-class recall (over the classes present, as CLIP and
clip_benchmark count it: MMPreTrain's macro recall counts absent ones as 0)
and base-to-novel accuracy."""
from typing import List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric

from mmprompt.registry import METRICS


def mean_per_class_recall(pred_labels: torch.Tensor,
                          gt_labels: torch.Tensor) -> float:
    """Recall of each class present in ``gt_labels``, averaged, in percent.

    Args:
        pred_labels (torch.Tensor): ``(N, )`` predicted labels.
        gt_labels (torch.Tensor): ``(N, )`` true labels.
    """
    gt_labels = gt_labels.long()
    classes, inverse = torch.unique(gt_labels, return_inverse=True)
    correct = (pred_labels.long() == gt_labels).double()
    hits = torch.zeros(
        len(classes), dtype=torch.float64).index_add_(0, inverse, correct)
    totals = torch.bincount(inverse, minlength=len(classes)).double()
    return float((hits / totals).mean() * 100)


@METRICS.register_module()
class MeanPerClassRecall(BaseMetric):
    """Mean per-class recall (key ``mean_per_class_recall``), in percent.

    Args:
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the result key. Defaults to None.
    """
    default_prefix: Optional[str] = None

    def __init__(self,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep each sample's ``pred_label`` and ``gt_label``."""
        for sample in data_samples:
            self.results.append((int(sample['pred_label'].reshape(-1)[0]),
                                 int(sample['gt_label'].reshape(-1)[0])))

    def compute_metrics(self, results: List[tuple]) -> dict:
        """``mean_per_class_recall`` of ``(pred_label, gt_label)`` pairs."""
        pred, gt = torch.tensor(results, dtype=torch.long).reshape(-1, 2).t()
        return dict(mean_per_class_recall=mean_per_class_recall(pred, gt))


def harmonic_mean(base: float, novel: float) -> float:
    """``2 b n / (b + n)``, 0 when both are 0."""
    return 2 * base * novel / (base + novel) if base + novel else 0.0


@METRICS.register_module()
class BaseNovelAccuracy(BaseMetric):
    """Base-to-novel accuracy (CoCoOp's protocol) in one pass: keys
    ``base``, ``novel`` (top-1, percent) and ``hm``.

    Each image is classified within its group (base labels first): a run
    per group, as a category's logit depends on its own prompt alone.

    Args:
        num_base (int, optional): Number of base classes. Defaults to None
            (as :func:`mmprompt.datasets.few_shot.split_labels`).
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Defaults to ``'base_novel'``.
    """
    default_prefix: Optional[str] = 'base_novel'

    def __init__(self,
                 num_base: Optional[int] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.num_base = num_base

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep, per sample, whether it is a base image and whether its
        arg-max within its group is right."""
        for sample in data_samples:
            scores = sample['pred_score'].reshape(-1)
            m = self.num_base or (scores.numel() + 1) // 2
            gt = int(sample['gt_label'].reshape(-1)[0])
            if gt < m:
                pred = int(scores[:m].argmax())
            else:
                pred = m + int(scores[m:].argmax())
            self.results.append((gt < m, pred == gt))

    def compute_metrics(self, results: List[tuple]) -> dict:
        """``base``, ``novel`` and ``hm`` in percent."""
        from mmprompt.utils.errors import InvalidInputError
        groups = {True: [], False: []}
        for is_base, right in results:
            groups[bool(is_base)].append(bool(right))
        for is_base, name in ((True, 'base'), (False, 'novel')):
            if not groups[is_base]:
                raise InvalidInputError(
                    f'BaseNovelAccuracy: no {name}-class images; its test '
                    'set holds every class (base and novel)')
        base, novel = (100.0 * sum(groups[g]) / len(groups[g])
                       for g in (True, False))
        return dict(base=base, novel=novel, hm=harmonic_mean(base, novel))
