"""Metrics against values computed by hand (and cross-checked with scikit-learn)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, recall_score

from components.errors import DataError
from components.training.metrics import classification_report, confusion_matrix

Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
Y_PRED = np.array([0, 0, 1, 1, 2, 2])
CLASSES = ["anger", "happiness", "neutral"]


def test_confusion_rows_are_true_classes() -> None:
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_report_matches_hand_computation() -> None:
    report = classification_report(Y_TRUE, Y_PRED, CLASSES)
    # accuracy 4/6; recalls 2/3, 1/2, 1/1; precisions 1, 1/2, 1/2
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["war"] == report["accuracy"]
    assert report["uar"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    # F1: 2*1*(2/3)/(5/3) = 0.8; 2*.5*.5/1 = 0.5; 2*.5*1/1.5 = 2/3
    assert report["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert report["per_class_recall"] == pytest.approx(
        {"anger": 2 / 3, "happiness": 0.5, "neutral": 1.0})
    assert report["n"] == 6


def test_agrees_with_sklearn_on_random_labels() -> None:
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    report = classification_report(y_true, y_pred, list("abcde"))
    assert report["uar"] == pytest.approx(recall_score(y_true, y_pred, average="macro"))
    assert report["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))


def test_absent_class_is_left_out_of_uar_not_scored_zero() -> None:
    report = classification_report(Y_TRUE, Y_PRED, CLASSES + ["surprise"])
    assert report["per_class_recall"]["surprise"] is None
    assert report["uar"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert np.asarray(report["confusion"]).shape == (4, 4)


def test_bad_inputs_raise_data_error() -> None:
    with pytest.raises(DataError, match="outside"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
    with pytest.raises(DataError, match="labels but"):
        confusion_matrix(np.array([0, 1]), np.array([0]), 3)
