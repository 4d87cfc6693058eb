"""A minimal deterministic training function and batched inference for torch models.

Estimators (SVM fusion, hierarchical) never import the project trainer: they take a
``train_fn(model, x_train, y_train, x_val, y_val) -> model``. :func:`simple_train_fn`
builds a small one (Adam, cross-entropy, a few epochs) for tests and as a default; the
training package supplies a better one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

TrainFn = Callable[
    [nn.Module, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None], nn.Module
]


def simple_train_fn(
    epochs: int = 5,
    lr: float = 1e-3,
    batch_size: int = 32,
    seed: int = 0,
    weight_decay: float = 0.0,
) -> TrainFn:
    """Return a ``train_fn`` that fits with Adam + cross-entropy for ``epochs`` epochs.

    Shuffling uses a generator seeded with ``seed``, so the same model and data train to the
    same weights on CPU. With validation data the weights of the best validation-accuracy
    epoch are kept. The returned model is in eval mode.
    """

    def train(
        model: nn.Module,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
    ) -> nn.Module:
        x = torch.as_tensor(np.asarray(x_train, dtype=np.float32))
        y = torch.as_tensor(np.asarray(y_train, dtype=np.int64))
        generator = torch.Generator().manual_seed(seed)
        optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        best_acc, best_state = -1.0, None
        for _ in range(epochs):
            model.train()
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), batch_size):
                idx = order[start : start + batch_size]
                if len(idx) < 2 and len(x) >= 2:
                    continue  # a batch of one breaks batch norm; its sample returns next epoch
                optimiser.zero_grad()
                F.cross_entropy(model(x[idx]), y[idx]).backward()
                optimiser.step()
            if x_val is not None and y_val is not None and len(y_val):
                acc = float((predict_proba(model, x_val).argmax(1) == np.asarray(y_val)).mean())
                if acc > best_acc:
                    best_acc, best_state = acc, copy.deepcopy(model.state_dict())
        if best_state is not None:
            model.load_state_dict(best_state)
        return model.eval()

    return train


@torch.no_grad()
def predict_proba(model: nn.Module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Softmax of ``model`` over ``x`` in batches, in eval mode; returns float64 (N, C)."""
    model.eval()
    out = []
    for start in range(0, len(x), batch_size):
        batch = torch.as_tensor(np.asarray(x[start : start + batch_size], dtype=np.float32))
        out.append(torch.softmax(model(batch).double(), dim=1).numpy())  # sums to 1 in fp64
    if not out:
        raise ValueError("predict_proba: no samples")
    return np.concatenate(out)
