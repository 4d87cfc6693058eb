"""The routing benchmark's arithmetic: calibration error and the confidence counts."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.hierarchical_routing import calibration_error, routing_scores


def test_calibration_error_is_the_gap_between_confidence_and_accuracy():
    sure = np.ones(10)
    half_right = np.array([1.0, 0.0] * 5)
    assert calibration_error(sure, half_right) == pytest.approx(0.5)
    assert calibration_error(np.full(10, 0.5), half_right) == pytest.approx(0.0)
    # two bins, each weighted by its share of the samples
    confidence = np.array([0.95] * 4 + [0.3] * 4)
    correct = np.array([1, 1, 1, 1, 0, 0, 0, 1], dtype=float)
    assert calibration_error(confidence, correct) == pytest.approx(0.5 * 0.05 + 0.5 * 0.05)


def test_routing_scores_count_sure_wrong_and_flagged_answers():
    proba = np.array([[0.95, 0.05], [0.3, 0.7], [0.35, 0.65], [0.62, 0.38]])
    # predictions 0, 1, 1, 0 against truth 0, 0, 1, 1: two right, two wrong
    scores = routing_scores(proba, np.array([0, 0, 1, 1]), min_confidence=0.66)
    assert scores["accuracy"] == pytest.approx(0.5) and scores["wrong"] == 2
    assert scores["wrong_confident"] == 0  # no wrong answer at >= 0.9
    assert (scores["flagged_right"], scores["flagged_wrong"]) == (1, 1)  # 0.65 and 0.62
    assert scores["mean_confidence_wrong"] == pytest.approx((0.7 + 0.62) / 2)
