"""Is the challenger's gain real? A paired bootstrap over the test samples.

Two models scored on the same test samples (same digest) differ by a few faces on a small
test set; a 0.005 UAR gain on 96 faces is one face. The bootstrap redraws the test set with
replacement many times, scores both models on each redraw (the same redraw for both:
paired) and counts how often the challenger fails to beat the champion. That fraction is a
one-sided p-value; the gate wants it at most ``registry.significance``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.errors import DataError

METRICS: tuple[str, ...] = ("accuracy", "uar", "macro_f1")


@dataclass(frozen=True)
class Predictions:
    """One model's per-sample labels and predictions on one test split."""

    labels: np.ndarray
    predictions: np.ndarray


def metric_of(name: str) -> str:
    """The score a ``test_*`` metric name ends in (``test_occ25_uar`` -> ``uar``).

    Raises:
        DataError: the name ends in none of accuracy, uar, macro_f1.
    """
    for metric in METRICS:
        if name.endswith(f"_{metric}"):
            return metric
    raise DataError(f"{name}: the significance test knows {', '.join(METRICS)} only")


def scores(metric: str, labels: np.ndarray, predicted: np.ndarray, index: np.ndarray,
           n_classes: int) -> np.ndarray:
    """``metric`` on each bootstrap redraw (rows of ``index``), vectorised over redraws.

    Classes absent from a redraw are left out of UAR and macro-F1, as for the full split.
    """
    y, p = labels[index], predicted[index]  # (B, N)
    hit = y == p
    if metric == "accuracy":
        return hit.mean(axis=1)
    per_true = np.stack([(y == c).sum(axis=1) for c in range(n_classes)], axis=1)
    per_hit = np.stack([((y == c) & hit).sum(axis=1) for c in range(n_classes)], axis=1)
    present = per_true > 0
    recall = np.divide(per_hit, per_true, out=np.zeros(per_true.shape), where=present)
    if metric == "uar":
        return (recall * present).sum(axis=1) / present.sum(axis=1)
    per_pred = np.stack([(p == c).sum(axis=1) for c in range(n_classes)], axis=1)
    precision = np.divide(per_hit, per_pred, out=np.zeros(per_true.shape), where=per_pred > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(denom.shape), where=denom > 0)
    return (f1 * present).sum(axis=1) / present.sum(axis=1)


def paired_bootstrap(metric: str, challenger: Predictions, champion: Predictions, *,
                     resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """``(gain on the full split, one-sided p-value)`` of challenger over champion.

    The p-value is the share of redraws on which the challenger does not score higher.

    Raises:
        DataError: the two were not scored on the same labelled samples.
    """
    if not np.array_equal(challenger.labels, champion.labels):
        raise DataError("the two models' predictions are not on the same labelled test "
                        "samples; the paired test needs the same test split")
    labels = np.asarray(challenger.labels, dtype=np.int64)
    n_classes = int(max(labels.max(), challenger.predictions.max(),
                        champion.predictions.max())) + 1
    full = np.arange(len(labels))[None, :]
    mine, theirs = (scores(metric, labels, np.asarray(p.predictions), full, n_classes)[0]
                    for p in (challenger, champion))
    rng = np.random.default_rng(seed)
    chunk, not_better = 200, 0
    for start in range(0, resamples, chunk):
        index = rng.integers(0, len(labels), size=(min(chunk, resamples - start), len(labels)))
        diff = (scores(metric, labels, challenger.predictions, index, n_classes)
                - scores(metric, labels, champion.predictions, index, n_classes))
        not_better += int((diff <= 0).sum())
    return float(mine - theirs), not_better / resamples
