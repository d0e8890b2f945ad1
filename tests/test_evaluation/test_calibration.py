# Copyright (c) mmprompt contributors. All rights reserved.
"""Per-tag thresholds on planted scores whose best cuts are known."""
import pytest
import torch

from mmprompt.evaluation.calibration import (calibrate_thresholds,
                                             calibration_report,
                                             format_report, per_tag_f1)
from mmprompt.utils.errors import InvalidInputError

# Dyadic scores (exact in float32). Tag 0: positives 0.875, 0.75, 0.625
# above every negative (0.375 the highest): best cut 0.5, F1 1. Tag 1:
# positives 0.8125 and 0.3125 around the negative 0.5625: F1 2/3 at one
# selected, 1/2 at two, 4/5 at three (cut (0.3125 + 0.1875) / 2 = 0.25).
# Tag 2: no positives. Tag 3: one positive.
S = torch.tensor([
    [0.875, 0.8125, 0.5, 0.9375],
    [0.75, 0.5625, 0.25, 0.1],
    [0.625, 0.3125, 0.125, 0.2],
    [0.375, 0.1875, 0.0625, 0.3],
    [0.25, 0.125, 0.5, 0.4],
    [0.125, 0.0625, 0.75, 0.5],
])
T = torch.tensor([
    [1, 1, 0, 1],
    [1, 0, 0, 0],
    [1, 1, 0, 0],
    [0, 0, 0, 0],
    [0, 0, 0, 0],
    [0, 0, 0, 0],
]).bool()
CURRENT = torch.full((4, ), 0.625)


def test_best_f1_cuts_are_recovered_exactly():
    result = calibrate_thresholds(S, T, CURRENT)
    assert result['thresholds'].tolist() == [0.5, 0.25, 0.625, 0.71875]
    assert result['calibrated'].tolist() == [True, True, False, True]
    assert result['reason'][2] == 'no positives'
    f1 = per_tag_f1(S, T, result['thresholds'])
    assert f1[:2].tolist() == pytest.approx([1.0, 0.8])
    # No other threshold does better on any tag.
    for thr in torch.linspace(0, 1, 101):
        other = per_tag_f1(S, T, torch.full((4, ), float(thr)))
        assert bool((other <= f1 + 1e-12).all())


def test_min_support_and_target_precision():
    result = calibrate_thresholds(S, T, CURRENT, min_support=2)
    assert result['thresholds'][3] == 0.625
    assert result['reason'][3] == 'support 1 < 2'
    # Precision 1: tag 1 stops at its first score; 0.6: three selected
    # (2/3), the highest recall reaching it.
    strict = calibrate_thresholds(S, T, CURRENT, 'precision', 1.0)
    assert strict['thresholds'][:2].tolist() == [0.5, 0.6875]
    loose = calibrate_thresholds(S, T, CURRENT, 'precision', 0.6)
    assert loose['thresholds'][1] == 0.25
    # Tag 0 at precision 1 keeps every positive: cut 0.5.
    assert loose['thresholds'][0] == 0.5


def test_report_before_and_after():
    result = calibrate_thresholds(S, T, CURRENT)
    report = calibration_report(['a', 'b', 'c', 'd'], S, T, CURRENT, result)
    tags = {t['tag']: t for t in report['tags']}
    assert tags['a']['old_threshold'] == 0.625
    assert tags['a']['new_threshold'] == 0.5
    assert tags['a']['support'] == 3
    # Before: 0.875 and 0.75 of tag 0 pass 0.625 (2 of 3).
    assert tags['a']['f1_before'] == pytest.approx(100 * 4 / 5)
    assert tags['a']['f1_after'] == pytest.approx(100.0)
    assert tags['c']['reason'] == 'no positives'
    assert report['overall']['after']['OF1'] > \
        report['overall']['before']['OF1']
    assert 'kept: no positives' in format_report(report)


def test_bad_input():
    with pytest.raises(InvalidInputError, match='no tag has a positive'):
        calibrate_thresholds(S, torch.zeros_like(T), CURRENT)
    with pytest.raises(InvalidInputError, match='target precision'):
        calibrate_thresholds(S, T, CURRENT, 'precision')
    with pytest.raises(InvalidInputError, match='do not fit'):
        calibrate_thresholds(S, T[:, :3], CURRENT)
