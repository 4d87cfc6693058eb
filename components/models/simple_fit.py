"""The training-function contract of the estimators and their batched inference.

Estimators (SVM fusion, hierarchical) never import the project trainer: they take a
``train_fn(model, x_train, y_train, x_val, y_val, part=...) -> model``, which
``components.training.trainer.make_train_fn`` supplies, so every sub-model goes through the
one training loop.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import nn


class TrainFn(Protocol):
    """Trains one sub-network and returns it with its best validated weights.

    ``part`` names the network within its estimator ("planar fold 1", "second (fear +
    surprise)"): the project loop files each fit's learning curve under it, so a user sees
    every network an estimator trained, not only the finished estimator's score.
    """

    def __call__(self, model: nn.Module, x_train: np.ndarray, y_train: np.ndarray,
                 x_val: np.ndarray | None = None, y_val: np.ndarray | None = None, *,
                 part: str = "") -> nn.Module: ...


def in_eval_mode(model: nn.Module) -> nn.Module:
    """``model`` with every module in eval mode; a no-op when it already is (``eval()``
    walks every module, a visible share of one served photo's time)."""
    if any(module.training for module in model.modules()):
        model.eval()
    return model


@torch.inference_mode()  # lighter than no_grad: the outputs leave as numpy arrays
def predict_proba(model: nn.Module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Softmax of ``model`` over ``x`` in batches, in eval mode; returns float64 (N, C)."""
    in_eval_mode(model)
    out = []
    for start in range(0, len(x), batch_size):
        batch = torch.from_numpy(
            np.ascontiguousarray(x[start : start + batch_size], dtype=np.float32))
        out.append(torch.softmax(model(batch).double(), dim=1).numpy())  # sums to 1 in fp64
    if not out:
        raise ValueError("predict_proba: no samples")
    return np.concatenate(out)


@torch.no_grad()
def predict_features(model: nn.Module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The features ``model(x, return_features=True)`` returns beside its logits (the layer
    EC-STFL acts on), in batches, in eval mode; returns float32 (N, d)."""
    in_eval_mode(model)
    out = []
    for start in range(0, len(x), batch_size):
        batch = torch.from_numpy(
            np.ascontiguousarray(x[start : start + batch_size], dtype=np.float32))
        out.append(model(batch, return_features=True)[1].float().numpy())
    if not out:
        raise ValueError("predict_features: no samples")
    return np.concatenate(out)
