"""The training-function contract of the estimators and their batched inference.

Estimators (SVM fusion, hierarchical) never import the project trainer: they take a
``train_fn(model, x_train, y_train, x_val, y_val, part=...) -> model``, which
``components.training.trainer.make_train_fn`` supplies, so every sub-model goes through the
one training loop.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

# Trainer settings one sub-network's fit may change (``train_fn(..., settings=...)``): how
# long it trains and how its faces are augmented. ``epochs_scale`` multiplies the run's
# epochs and its schedule's horizon alike, so a tuning trial (the first epochs of the final
# run's schedule) still trains a prefix of what the final run's fit trains. Optimiser
# settings stay the run's: they are what the tuner chose.
FIT_SETTINGS: frozenset[str] = frozenset(
    {"epochs_scale", "shift", "rotate", "scale", "erase_p", "mirror", "patience",
     "label_smoothing"})


def check_fit_settings(settings: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """``settings`` as a plain dict after checking its keys are :data:`FIT_SETTINGS` and
    ``epochs_scale`` is positive (the values themselves are checked where they are applied,
    by the trainer's own settings). Raises:
        ConfigError: not a mapping, an unknown key or a scale <= 0.
    """
    from components.errors import ConfigError

    if settings is None:
        return {}
    if not isinstance(settings, Mapping):
        raise ConfigError(f"{where}: expected a mapping of training settings, got {settings!r}")
    unknown = sorted(set(settings) - FIT_SETTINGS)
    if unknown:
        raise ConfigError(f"{where}: {', '.join(unknown)} cannot be set for one network; "
                          f"use {', '.join(sorted(FIT_SETTINGS))}")
    scale = settings.get("epochs_scale", 1.0)
    if not isinstance(scale, int | float) or scale <= 0:
        raise ConfigError(f"{where}.epochs_scale: must be a number > 0, got {scale!r}")
    return dict(settings)


class TrainFn(Protocol):
    """Trains one sub-network and returns it with its best validated weights.

    ``part`` names the network within its estimator ("planar fold 1", "second (fear +
    surprise)"): the project loop files each fit's learning curve under it, so a user sees
    every network an estimator trained, not only the finished estimator's score.
    ``settings`` changes the run's training settings for this fit alone (keys in
    :data:`FIT_SETTINGS`), so an estimator can train one of its networks longer or with other
    augmentation than the rest.
    """

    def __call__(self, model: nn.Module, x_train: np.ndarray, y_train: np.ndarray,
                 x_val: np.ndarray | None = None, y_val: np.ndarray | None = None, *,
                 part: str = "", settings: Mapping[str, Any] | None = None) -> nn.Module: ...


# Where :func:`predict_proba` and :func:`predict_features` run. The CPU unless a caller
# says otherwise with :func:`inference_on`: the train stage scores its test splits on the
# device it trained on (on a GPU machine, CPU scoring of a wide network took longer than
# many epochs), while serving, evaluate and export keep predicting on the CPU.
_INFERENCE_DEVICE: ContextVar[str] = ContextVar("inference_device", default="cpu")


@contextmanager
def inference_on(device: torch.device | str) -> Iterator[None]:
    """Run :func:`predict_proba` and :func:`predict_features` on ``device`` inside the
    block: each call moves the network there and back to the CPU before it returns, so
    the caller's model (saved, pickled, served) stays a CPU model."""
    token = _INFERENCE_DEVICE.set(str(torch.device(device)))
    try:
        yield
    finally:
        _INFERENCE_DEVICE.reset(token)


@contextmanager
def _on_inference_device(model: nn.Module) -> Iterator[torch.device]:
    device = torch.device(_INFERENCE_DEVICE.get())
    if device.type == "cpu":
        yield device
        return
    model.to(device)
    try:
        yield device
    finally:
        model.to("cpu")


def _batch(x: np.ndarray, start: int, size: int, device: torch.device) -> torch.Tensor:
    batch = torch.from_numpy(np.ascontiguousarray(x[start : start + size], dtype=np.float32))
    return batch if device.type == "cpu" else batch.to(device)


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
    with _on_inference_device(model) as device:
        for start in range(0, len(x), batch_size):
            logits = model(_batch(x, start, batch_size, device))
            out.append(torch.softmax(logits.double(), dim=1).cpu().numpy())  # sums to 1 in fp64
    if not out:
        raise ValueError("predict_proba: no samples")
    return np.concatenate(out)


@torch.no_grad()
def predict_features(model: nn.Module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The features ``model(x, return_features=True)`` returns beside its logits (the layer
    EC-STFL acts on), in batches, in eval mode; returns float32 (N, d)."""
    in_eval_mode(model)
    out = []
    with _on_inference_device(model) as device:
        for start in range(0, len(x), batch_size):
            features = model(_batch(x, start, batch_size, device), return_features=True)[1]
            out.append(features.float().cpu().numpy())
    if not out:
        raise ValueError("predict_features: no samples")
    return np.concatenate(out)
