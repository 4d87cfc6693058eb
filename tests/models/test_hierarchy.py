"""Seed 002 grouping reproduces the patent's FIG. 7 numbers (methods.md 3.8)."""

from __future__ import annotations

import numpy as np
import pytest

from components.errors import ConfigError
from components.models.hierarchy import (
    cross_entropy_h,
    group_categories,
    similarity,
    similarity_matrix,
)

LABELS = ["Anger", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise"]
FIG_7A = np.array([
    [240, 11, 6, 1, 4, 5, 5],
    [16, 270, 7, 1, 1, 11, 2],
    [8, 15, 250, 0, 2, 2, 10],
    [2, 1, 0, 279, 2, 0, 1],
    [7, 1, 1, 1, 255, 2, 0],
    [5, 5, 3, 0, 2, 223, 1],
    [0, 0, 15, 2, 2, 1, 258],
])
FIG_7B = np.array([
    [np.nan, 0.044814, 0.024693, 0.004158, 0.016529, 0.020619, 0.020619],
    [0.057570, np.nan, 0.025596, 0.003697, 0.003697, 0.039933, 0.007380],
    [0.031499, 0.058269, np.nan, 0, 0.007968, 0.007968, 0.039221],
    [0.007143, 0.003578, 0, np.nan, 0.007143, 0, 0.003578],
    [0.027081, 0.003914, 0.003914, 0.003914, np.nan, 0.007813, 0],
    [0.022174, 0.022174, 0.013363, 0, 0.008929, np.nan, 0.004474],
    [0, 0, 0.056512, 0.007722, 0.007722, 0.003868, np.nan],
])
FIG_7C_UPPER = {
    (0, 1): 0.102384, (0, 2): 0.056191, (0, 3): 0.011301, (0, 4): 0.043610,
    (0, 5): 0.042793, (0, 6): 0.020619, (1, 2): 0.083864, (1, 3): 0.007275,
    (1, 4): 0.007611, (1, 5): 0.062107, (1, 6): 0.007380, (2, 3): 0, (2, 4): 0.011882,
    (2, 5): 0.021331, (2, 6): 0.095733, (3, 4): 0.011057, (3, 5): 0, (3, 6): 0.011300,
    (4, 5): 0.016741, (4, 6): 0.007722, (5, 6): 0.008343,
}
AD = (0, 1)
# FIG. 7E: other unit -> (H(AD, other), H(other, AD)); FIG. 7F: S(AD, other).
FIG_7E = {2: (0.023920, 0.088011), 3: (0.003717, 0.010695), 4: (0.009268, 0.030890),
          5: (0.029360, 0.043867), 6: (0.012951, 0.0)}
FIG_7F_AD = {2: 0.111931, 3: 0.014413, 4: 0.040158, 5: 0.073227, 6: 0.012951}


def test_fig7a_is_the_documented_fold():
    assert FIG_7A.sum() == 1936
    assert np.trace(FIG_7A) == 1775


def test_first_cross_entropy_and_similarity():
    assert cross_entropy_h(FIG_7A, 0, 1) == pytest.approx(0.044814, abs=1e-6)
    assert similarity(FIG_7A, 0, 1) == pytest.approx(0.102384, abs=1e-6)


def test_fig7b_cross_entropy_table():
    for p in range(7):
        for q in range(7):
            if p != q:
                assert cross_entropy_h(FIG_7A, p, q) == pytest.approx(FIG_7B[p, q], abs=1e-6)


def test_fig7c_similarity_table_is_symmetric_and_exact():
    table = similarity_matrix(FIG_7A, list(range(7)))
    for (p, q), value in FIG_7C_UPPER.items():
        assert table[p, q] == pytest.approx(value, abs=1e-6)
        assert table[q, p] == table[p, q]


def test_fig7e_and_7f_group_level_values_pool_rows_and_columns():
    for other, (h_ad_other, h_other_ad) in FIG_7E.items():
        assert cross_entropy_h(FIG_7A, AD, other) == pytest.approx(h_ad_other, abs=1e-6)
        assert cross_entropy_h(FIG_7A, other, AD) == pytest.approx(h_other_ad, abs=1e-6)
        assert similarity(FIG_7A, AD, other) == pytest.approx(FIG_7F_AD[other], abs=1e-6)


def test_grouping_with_k4_follows_the_documented_merges():
    grouping = group_categories(FIG_7A, LABELS, k=4)
    first, second = grouping.steps[:2]
    assert (first.first, first.second) == (("Anger",), ("Disgust",))
    assert first.similarity == pytest.approx(0.102384, abs=1e-6)
    assert (second.first, second.second) == (("Anger", "Disgust"), ("Fear",))
    assert second.similarity == pytest.approx(0.111931, abs=1e-6)
    assert [s.units_after for s in grouping.steps] == [6, 5, 4, 3]
    assert grouping.units == [
        ("Anger", "Disgust", "Fear", "Sadness", "Surprise"), ("Happiness",), ("Neutral",)
    ]
    assert grouping.unit_of()[3] == 1  # Happiness alone in the second unit


def test_threshold_rule_stops_when_similarity_falls_below():
    grouping = group_categories(FIG_7A, LABELS, threshold=0.1)
    assert len(grouping.steps) == 2  # 0.102 and 0.112 merge; the next best is 0.078
    assert ("Anger", "Disgust", "Fear") in grouping.units


def test_zero_true_positives_are_smoothed_not_infinite():
    counts = np.array([[0, 4], [1, 5]])
    assert cross_entropy_h(counts, 0, 1) == pytest.approx(np.log(5.0 / 0.5))
    assert np.isfinite(similarity(counts, 0, 1))


def test_fewer_classes_than_k_are_left_alone():
    grouping = group_categories(FIG_7A[:3, :3], LABELS[:3], k=4)
    assert grouping.steps == []
    assert len(grouping.units) == 3


def test_mismatched_labels_raise_config_error():
    with pytest.raises(ConfigError, match="labels"):
        group_categories(FIG_7A, LABELS[:5])
