# Copyright (c) mmprompt contributors. All rights reserved.
"""Mean per-class recall, as zero-shot benchmarks report it.

MMPreTrain's ``SingleLabelMetric(average='macro', items=('recall', ))``
averages over all ``num_classes`` columns of the scores, so a class absent
from the evaluated set counts as recall 0. CLIP's and clip_benchmark's
"mean per-class recall" (scikit-learn's ``balanced_accuracy_score``)
averages over the classes present in the ground truth. On full CIFAR-100 or
ImageNet both are equal; on a subset only this one is meaningful.
"""
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

    Returns:
        float: Mean per-class recall in ``[0, 100]``.
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
    """Mean per-class recall (balanced accuracy) of single-label predictions.

    The result key is ``mean_per_class_recall`` (with ``prefix/`` if a
    prefix is given), in percent.

    Args:
        collect_device (str): Device used to collect results across ranks,
            ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the result key. Defaults to None.
    """
    default_prefix: Optional[str] = None

    def __init__(self,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep the predicted and true label of every sample.

        Args:
            data_batch: Unused.
            data_samples (Sequence[dict]): Model outputs with ``pred_label``
                and ``gt_label``.
        """
        for sample in data_samples:
            self.results.append((int(sample['pred_label'].reshape(-1)[0]),
                                 int(sample['gt_label'].reshape(-1)[0])))

    def compute_metrics(self, results: List[tuple]) -> dict:
        """Compute the metric from all processed samples.

        Args:
            results (list[tuple]): ``(pred_label, gt_label)`` pairs.

        Returns:
            dict: ``{'mean_per_class_recall': value}``.
        """
        pred, gt = torch.tensor(results, dtype=torch.long).reshape(-1, 2).t()
        return dict(mean_per_class_recall=mean_per_class_recall(pred, gt))
