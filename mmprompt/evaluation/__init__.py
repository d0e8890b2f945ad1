# Copyright (c) mmprompt contributors. All rights reserved.
from .metrics import (BaseNovelAccuracy, MeanPerClassRecall, harmonic_mean,
                      mean_per_class_recall)
from .tagging_metric import TaggingMetric, tagging_metrics

__all__ = [
    'BaseNovelAccuracy', 'harmonic_mean', 'MeanPerClassRecall',
    'mean_per_class_recall', 'TaggingMetric', 'tagging_metrics'
]
