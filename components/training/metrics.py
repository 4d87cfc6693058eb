"""Classification metrics for expression recognition, in plain numpy.

Expression data sets are imbalanced (FER2013 has ~1.5 % disgust), so overall accuracy (WAR)
alone hides minority-class failure; UAR (the mean of per-class recalls, the DFEW protocol) and
macro-F1 are reported beside it. Classes absent from ``y_true`` are left out of UAR and
macro-F1 so a small split without, say, contempt does not score that class as 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from components.errors import DataError


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Count matrix ``cm[t, p]``: samples of true class t predicted as p.

    Returns:
        int64 array (num_classes, num_classes).

    Raises:
        DataError: the arrays differ in length or hold an index outside [0, num_classes).
    """
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise DataError(f"metrics: {y_true.size} labels but {y_pred.size} predictions")
    for name, arr in (("labels", y_true), ("predictions", y_pred)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise DataError(f"metrics: {name} outside [0, {num_classes}): {arr.min()}..{arr.max()}")
    flat = y_true * num_classes + y_pred
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_recall(cm: np.ndarray) -> np.ndarray:
    """Recall of each class (diagonal over row sums); NaN for classes with no true samples."""
    support = cm.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / support, np.nan)


def per_class_precision(cm: np.ndarray) -> np.ndarray:
    """Precision of each class; 0 where the class was never predicted (sklearn's convention)."""
    predicted = cm.sum(axis=0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(predicted > 0, np.diag(cm) / predicted, 0.0)


def per_class_f1(cm: np.ndarray) -> np.ndarray:
    """F1 of each class; NaN for classes with no true samples, 0 when precision+recall is 0."""
    recall = per_class_recall(cm)
    precision = per_class_precision(cm)
    total = precision + np.nan_to_num(recall)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(total > 0, 2 * precision * np.nan_to_num(recall) / total, 0.0)
    return np.where(np.isnan(recall), np.nan, f1)


def summarize(cm: np.ndarray) -> dict[str, float]:
    """Scalar metrics from a confusion matrix.

    Returns:
        ``accuracy`` (= WAR), ``war``, ``uar``, ``macro_f1`` and ``n`` (sample count). Empty
        inputs give NaN scores.
    """
    n = int(cm.sum())
    accuracy = float(np.trace(cm) / n) if n else float("nan")
    recall = per_class_recall(cm)
    f1 = per_class_f1(cm)
    present = ~np.isnan(recall)
    uar = float(recall[present].mean()) if present.any() else float("nan")
    macro_f1 = float(f1[present].mean()) if present.any() else float("nan")
    return {"accuracy": accuracy, "war": accuracy, "uar": uar, "macro_f1": macro_f1, "n": n}


def classification_report(
    y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]
) -> dict[str, Any]:
    """Everything the trainer reports for one split.

    Returns:
        The :func:`summarize` scalars plus ``per_class_recall`` and ``per_class_f1``
        (class name -> value, None where the class has no samples) and ``confusion``
        (nested lists, rows = true class, columns = predicted class, in ``classes`` order).
    """
    cm = confusion_matrix(y_true, y_pred, len(classes))
    report: dict[str, Any] = summarize(cm)
    report["per_class_recall"] = _named(per_class_recall(cm), classes)
    report["per_class_f1"] = _named(per_class_f1(cm), classes)
    report["confusion"] = cm.tolist()
    return report


def _named(values: np.ndarray, classes: list[str]) -> dict[str, float | None]:
    return {c: (None if np.isnan(v) else float(v)) for c, v in zip(classes, values, strict=True)}
