# Copyright (c) mmprompt contributors. All rights reserved.
from .metrics import MeanPerClassRecall, mean_per_class_recall
from .tagging_metric import TaggingMetric, tagging_metrics

__all__ = [
    'MeanPerClassRecall', 'mean_per_class_recall', 'TaggingMetric',
    'tagging_metrics'
]
