"""Create any architecture by name, and say which preprocessed modalities it reads.

The trainer, tuner and registry never special-case a model family: they call
``create_model(name, num_classes, in_channels, **kwargs)`` with kwargs from params.yaml
(or an Optuna trial) and feed the arrays named by ``MODEL_INPUTS[name]``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from components.errors import ConfigError, DataError
from components.models.baseline import BaselineCNN
from components.models.c3d import C3D
from components.models.hierarchical import HierarchicalClassifier
from components.models.partition import PartitionCNN
from components.models.seed000 import (
    PatentCNN,
    TwoStreamCNN,
    color_cnn,
    depth_cnn,
    fusion_early,
)
from components.models.svm_fusion import SVMFusion

# Modalities (keys of the preprocessed arrays) each model reads, in channel-stacking order.
MODEL_INPUTS: dict[str, tuple[str, ...]] = {
    "baseline_cnn": ("color",),
    "partition_cnn": ("color",),
    "fusion_early": ("depth", "color", "color2d"),
    "fusion_twostream": ("depth", "color"),
    "depth_cnn": ("depth",),
    "color_cnn": ("color",),
    "svm_fusion": ("depth", "color"),
    "hierarchical": ("color",),
    "c3d_ecstfl": ("frames",),
}

ESTIMATORS: frozenset[str] = frozenset({"svm_fusion", "hierarchical"})


def _svm_fusion(num_classes: int, in_channels: int, depth_channels: int = 1, **kw: Any):
    return SVMFusion(num_classes, depth_channels, in_channels - depth_channels, **kw)


_BUILDERS: dict[str, Callable[..., Any]] = {
    "baseline_cnn": BaselineCNN,
    "partition_cnn": PartitionCNN,
    "fusion_early": fusion_early,
    "fusion_twostream": TwoStreamCNN,
    "depth_cnn": depth_cnn,
    "color_cnn": color_cnn,
    "svm_fusion": _svm_fusion,
    "hierarchical": HierarchicalClassifier,
    "c3d_ecstfl": C3D,
}

# Where each builder's accepted kwargs are declared (the builder itself plus the class
# it forwards **kwargs to); hierarchical forwards unknown kwargs to its base CNN instead.
_KWARG_SOURCES: dict[str, tuple[Callable[..., Any], ...]] = {
    "fusion_early": (fusion_early, PatentCNN),
    "depth_cnn": (depth_cnn, PatentCNN),
    "color_cnn": (color_cnn, PatentCNN),
    "svm_fusion": (_svm_fusion, SVMFusion),
}
_POSITIONAL = {"self", "kw", "kwargs", "num_classes", "in_channels", "n_conv"}


def available_models() -> list[str]:
    """Names ``create_model`` accepts, sorted."""
    return sorted(_BUILDERS)


def build_model(spec: Any) -> Any:
    """An untrained model of a trained run's spec (its ``arch``, ``num_classes``,
    ``in_channels`` and ``model_kwargs``): the one way a saved model is rebuilt before its
    weights are loaded."""
    return create_model(spec.arch, spec.num_classes, spec.in_channels, **spec.model_kwargs)


def create_model(name: str, num_classes: int, in_channels: int, **kwargs: Any) -> Any:
    """Build model ``name``: a torch module returning logits, or an estimator.

    ``in_channels`` is the total over ``MODEL_INPUTS[name]`` (e.g. 4 for depth + RGB;
    for svm_fusion the depth network takes ``depth_channels`` of them, default 1).

    Raises:
        ConfigError: unknown name, unknown kwarg, fewer than 2 classes or no channels.
    """
    if name not in _BUILDERS:
        raise ConfigError(f"model {name!r} is unknown; available: {', '.join(available_models())}")
    if num_classes < 2:
        raise ConfigError(
            f"model {name}: num_classes must be >= 2, got {num_classes} "
            "(a single-category detector is 2 classes: the category vs the rest)"
        )
    if in_channels < 1:
        raise ConfigError(f"model {name}: in_channels must be >= 1, got {in_channels}")
    _check_kwargs(name, kwargs)
    try:
        return _BUILDERS[name](num_classes=num_classes, in_channels=in_channels, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model {name}: {exc}") from exc


def _check_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    """Reject kwargs the architecture does not take, naming them and the accepted ones."""
    if name == "hierarchical":
        return  # its extra kwargs belong to the base CNN, checked when each one is built
    accepted: set[str] = set()
    for source in _KWARG_SOURCES.get(name, (_BUILDERS[name],)):
        accepted |= set(inspect.signature(source).parameters)
    accepted -= _POSITIONAL
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ConfigError(
            f"model {name}: unknown option {unknown[0]!r}; accepted: {', '.join(sorted(accepted))}"
        )


def stack_inputs(name: str, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Stack the modalities ``MODEL_INPUTS[name]`` channel-wise into one float32 array.

    Clips (c3d_ecstfl) stack along their channel axis (N, T, C, H, W).

    Raises:
        ConfigError: unknown model name.
        DataError: a needed modality is missing from ``arrays``.
    """
    if name not in MODEL_INPUTS:
        raise ConfigError(f"model {name!r} is unknown; available: {', '.join(available_models())}")
    missing = [m for m in MODEL_INPUTS[name] if m not in arrays]
    if missing:
        raise DataError(
            f"model {name}: needs modalities {MODEL_INPUTS[name]}, missing {missing}; "
            "preprocess a task that provides them"
        )
    axis = 2 if name == "c3d_ecstfl" else 1
    return np.concatenate(
        [np.asarray(arrays[m], dtype=np.float32) for m in MODEL_INPUTS[name]], axis=axis
    )
