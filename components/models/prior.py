"""The class prior in the decision rule: a model predicts from logits + w x log(prior).

A network trained with the logit-adjusted loss (``train.logit_adjust`` tau: the loss sees
logits + tau x log prior) learns scores whose argmax aims at balanced error, i.e. UAR, and
may give up accuracy for it: the minority classes win more of the faces in between. Adding
``w`` x log prior back when predicting (``train.prior_weight``) moves the rule, on the same
weights, towards the training distribution's posterior, which is accuracy's rule at
``w = tau`` (Menon et al. 2021, "Long-tail learning via logit adjustment", sections 3-4); a
negative ``w`` moves a plainly trained network towards the balanced rule instead (their
post-hoc adjustment). Which trade a model makes is then one number, chosen on validation,
and validation during training, the test scores, the registered model, serving and the ONNX
export all predict with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


def log_class_prior(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Log of each class's share of ``labels`` (add-one smoothed, so a class without
    examples gets a finite, very negative value), as float64 of length ``num_classes``
    (or more, when a label is outside that range)."""
    labels = np.asarray(labels, dtype=np.int64)
    width = max(int(num_classes), int(labels.max()) + 1 if labels.size else 0)
    counts = np.bincount(labels, minlength=width).astype(np.float64)
    return np.log((counts + 1.0) / (counts.sum() + len(counts)))


def prior_offsets(weight: float, log_prior: Sequence[float] | None) -> list[float] | None:
    """``weight`` x ``log_prior`` as the per-class offsets a model adds to its logits, or
    None when the rule is the plain argmax (weight 0).

    Raises:
        ValueError: a non-zero weight without the prior it weighs.
    """
    if not weight:
        return None
    if not log_prior:
        raise ValueError(f"prior weight {weight} needs the training classes' log prior")
    return [float(weight) * float(value) for value in log_prior]


class PriorShift(nn.Module):
    """``model``'s logits plus fixed per-class offsets (``weight x log prior``).

    A module, not a step in the caller, so that everything that predicts through the
    network (scoring, the MLflow model, serving, the ONNX graph) applies the same rule.
    """

    def __init__(self, model: nn.Module, offsets: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("offsets", torch.tensor(list(offsets), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The wrapped model's logits shifted by the offsets."""
        logits = self.model(x)
        if logits.shape[-1] != self.offsets.shape[0]:
            raise ValueError(f"the prior has {self.offsets.shape[0]} classes, the model's "
                             f"logits {logits.shape[-1]}")
        return logits + self.offsets.to(logits.dtype)
