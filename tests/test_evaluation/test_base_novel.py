# Copyright (c) mmprompt contributors. All rights reserved.
"""BaseNovelAccuracy on hand-made scores with known numbers."""
import pytest
import torch

from mmprompt.evaluation import BaseNovelAccuracy, harmonic_mean
from mmprompt.utils.errors import InvalidInputError


def outputs(rows):
    return [
        dict(pred_score=torch.tensor(scores), gt_label=torch.tensor([gt]))
        for gt, scores in rows
    ]


def test_each_group_is_classified_among_its_own_classes():
    # 4 classes: base 0, 1; novel 2, 3.
    rows = [
        (0, [0.10, 0.05, 0.80, 0.05]),  # wrong over all, right among base
        (1, [0.60, 0.30, 0.05, 0.05]),  # wrong
        (0, [0.50, 0.20, 0.20, 0.10]),  # right
        (1, [0.10, 0.50, 0.30, 0.10]),  # right
        (2, [0.70, 0.10, 0.15, 0.05]),  # wrong over all, right among novel
        (3, [0.10, 0.10, 0.50, 0.30]),  # wrong
    ]
    metric = BaseNovelAccuracy()
    metric.process(None, outputs(rows))
    result = metric.evaluate(len(rows))
    assert result == {
        'base_novel/base': 75.0,
        'base_novel/novel': 50.0,
        'base_novel/hm': 60.0
    }
    # Five classes: the first three are base (half, rounded up).
    metric = BaseNovelAccuracy()
    metric.process(None, outputs([(2, [0.1, 0.1, 0.2, 0.5, 0.1]),
                                  (3, [0.9, 0.0, 0.0, 0.0, 0.1])]))
    assert metric.evaluate(2) == {
        'base_novel/base': 100.0,
        'base_novel/novel': 0.0,
        'base_novel/hm': 0.0
    }
    assert harmonic_mean(82.69, 63.22) == pytest.approx(71.66, abs=5e-3)


def test_a_test_set_without_novel_images_is_refused():
    metric = BaseNovelAccuracy(num_base=2)
    metric.process(None, outputs([(0, [0.9, 0.1, 0.0])]))
    with pytest.raises(InvalidInputError, match='no novel-class images'):
        metric.evaluate(1)
