"""Out-of-fold predictions, shared by the estimators that learn from held-out outputs.

Both seed 000 variant B (SVM on the networks' softmax outputs) and seed 002 (grouping from
the planar model's confusion) need predictions on training data that the predicting model
did not see; otherwise the outputs are over-confident and show almost no confusion.

scikit-learn loads inside the functions that use it: every stage imports the model zoo, and
sklearn's import costs each of them about a second of start-up for nothing.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from components.errors import ConfigError
from components.models.simple_fit import TrainFn, predict_proba


def fold_indices(y: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, held-out) index pairs of a shuffled, stratified ``folds``-fold split.

    Falls back to plain k-fold when no class has ``folds`` members.

    Raises:
        ConfigError: folds < 2 or more folds than samples.
    """
    from sklearn.model_selection import KFold, StratifiedKFold  # loaded when a model folds

    y = np.asarray(y)
    if folds < 2 or folds > len(y):
        raise ConfigError(f"folds: need 2 <= folds <= {len(y)} samples, got {folds}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # rare classes: sklearn warns, still splits
        try:
            splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
            return list(splitter.split(np.zeros(len(y)), y))
        except ValueError:
            splitter = KFold(folds, shuffle=True, random_state=seed)
            return list(splitter.split(np.zeros(len(y))))


def seeded_model(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    """Build a model with its initial weights drawn from ``seed`` without touching global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def out_of_fold_proba(
    build: Callable[[], nn.Module],
    x: np.ndarray,
    y: np.ndarray,
    train_fn: TrainFn,
    folds: int,
    seed: int,
    keep: list[nn.Module] | None = None,
    part: str = "network",
) -> np.ndarray:
    """Softmax outputs for every training sample from a model trained without its fold.

    ``keep``, if given, receives the trained fold models in fold order (an estimator may
    start later networks from them instead of training that much again). ``part`` names the
    networks for ``train_fn`` ("<part> fold <k>").
    Returns (N, C) probabilities, C the number of model outputs.
    """
    out: np.ndarray | None = None
    for k, (train_idx, held_idx) in enumerate(fold_indices(y, folds, seed)):
        model = seeded_model(build, seed + 1 + k)
        model = train_fn(model, x[train_idx], y[train_idx], None, None,
                         part=f"{part} fold {k + 1}")
        if keep is not None:
            keep.append(model)
        proba = predict_proba(model, x[held_idx])
        if out is None:
            out = np.zeros((len(y), proba.shape[1]))
        out[held_idx] = proba
    assert out is not None
    return out
