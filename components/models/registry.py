"""Create any architecture by name, and say which preprocessed modalities it reads.

The trainer, tuner and registry never special-case a model family: they call
``create_model(name, num_classes, in_channels, **kwargs)`` with kwargs from params.yaml
(or an Optuna trial) and feed the arrays named by ``MODEL_INPUTS[name]``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import torch

from components.errors import ConfigError, DataError
from components.models.baseline import BaselineCNN
from components.models.c3d import C3D
from components.models.classifier import (
    ESTIMATOR_FILE,
    TORCH_FILE,
    Classifier,
    ModelSpec,
    TorchClassifier,
    TrainingNeeds,
)
from components.models.ensemble import MEMBERS_KEY, build_members, member_count
from components.models.hierarchical import HierarchicalClassifier
from components.models.partition import PartitionCNN
from components.models.r2plus1d import R2Plus1D
from components.models.resnet import ResNetCNN
from components.models.seed000 import (
    LumaTwoStreamCNN,
    PatentCNN,
    TwoStreamCNN,
    color_cnn,
    depth_cnn,
    fusion_early,
    fusion_early_rgb,
)
from components.models.svm_fusion import SVMFusion

# Modalities (keys of the preprocessed arrays) each model reads, in channel-stacking order.
MODEL_INPUTS: dict[str, tuple[str, ...]] = {
    "baseline_cnn": ("color",),
    "partition_cnn": ("color",),
    "resnet_cnn": ("color",),  # not from the patents: a residual zoo entry (issue 11's capacity)
    "fusion_early": ("depth", "color", "color2d"),
    "fusion_twostream": ("depth", "color"),
    # colour-only twins of the RGB-D networks, of the same capacity (claims 1-3)
    "fusion_early_rgb": ("color", "color2d"),
    "fusion_twostream_rgb": ("color",),
    "depth_cnn": ("depth",),
    "color_cnn": ("color",),
    "svm_fusion": ("depth", "color"),
    "hierarchical": ("color",),
    "c3d_ecstfl": ("frames",),
    "r2plus1d_ecstfl": ("frames",),  # the second spatio-temporal backbone (claim 19)
}

# Models that are not one network: classifiers of their own (fit through the loop, pickled).
_ESTIMATOR_CLASSES: dict[str, type[Classifier]] = {
    "svm_fusion": SVMFusion,
    "hierarchical": HierarchicalClassifier,
}
# What a plain network's training needs beyond the defaults, declared once here.
_NETWORK_NEEDS: dict[str, TrainingNeeds] = {
    "c3d_ecstfl": TrainingNeeds(ecstfl=True),
    "r2plus1d_ecstfl": TrainingNeeds(ecstfl=True),
}


def _svm_fusion(num_classes: int, in_channels: int, depth_channels: int = 1, **kw: Any):
    return SVMFusion(num_classes, depth_channels, in_channels - depth_channels, **kw)


_BUILDERS: dict[str, Callable[..., Any]] = {
    "baseline_cnn": BaselineCNN,
    "partition_cnn": PartitionCNN,
    "resnet_cnn": ResNetCNN,
    "fusion_early": fusion_early,
    "fusion_twostream": TwoStreamCNN,
    "fusion_early_rgb": fusion_early_rgb,
    "fusion_twostream_rgb": LumaTwoStreamCNN,
    "depth_cnn": depth_cnn,
    "color_cnn": color_cnn,
    "svm_fusion": _svm_fusion,
    "hierarchical": HierarchicalClassifier,
    "c3d_ecstfl": C3D,
    "r2plus1d_ecstfl": R2Plus1D,
}

# Where each builder's accepted kwargs are declared (the builder itself plus the class
# it forwards **kwargs to); hierarchical forwards unknown kwargs to its base CNN instead.
_KWARG_SOURCES: dict[str, tuple[Callable[..., Any], ...]] = {
    "fusion_early": (fusion_early, PatentCNN),
    "fusion_early_rgb": (fusion_early_rgb, PatentCNN),
    "fusion_twostream_rgb": (LumaTwoStreamCNN, TwoStreamCNN),
    "depth_cnn": (depth_cnn, PatentCNN),
    "color_cnn": (color_cnn, PatentCNN),
    "svm_fusion": (_svm_fusion, SVMFusion),
}
_POSITIONAL = {"self", "kw", "kwargs", "num_classes", "in_channels", "n_conv"}


def available_models() -> list[str]:
    """Names ``create_model`` accepts, sorted."""
    return sorted(_BUILDERS)


def plain_networks() -> list[str]:
    """Names whose model is one network (what ``hierarchical`` may use as its base)."""
    return [name for name in available_models() if name not in _ESTIMATOR_CLASSES]


def training_needs(name: str) -> TrainingNeeds:
    """What model ``name`` declares about its training and inference.

    Raises:
        ConfigError: unknown name.
    """
    if name not in _BUILDERS:
        raise ConfigError(f"model {name!r} is unknown; available: {', '.join(available_models())}")
    if name in _ESTIMATOR_CLASSES:
        return _ESTIMATOR_CLASSES[name].needs
    return _NETWORK_NEEDS.get(name, TrainingNeeds())


def seeded_kwargs(name: str, kwargs: dict[str, Any], seed: int) -> dict[str, Any]:
    """``kwargs`` with ``seed`` added when the model takes one and none is set (the
    estimators seed their folds and SVM; networks are seeded by the trainer)."""
    out = dict(kwargs)
    if "seed" in _accepted_kwargs(name):
        out.setdefault("seed", seed)
    return out


def named_kwargs(name: str, kwargs: dict[str, Any], classes: list[str]) -> dict[str, Any]:
    """``kwargs`` with ``class_names`` added when the model takes them and none are set:
    an estimator then names its networks by their expressions ("second (fear + surprise)")
    in the run's files and MLflow curves, not by class indices."""
    out = dict(kwargs)
    if "class_names" in _accepted_kwargs(name):
        out.setdefault("class_names", list(classes))
    return out


def create_members(name: str, num_classes: int, in_channels: int,
                   kwargs: dict[str, Any]) -> Any:
    """:func:`create_model`, or a :class:`~components.models.ensemble.SeedEnsemble` of
    ``kwargs["members"]`` such networks (the option is the ensemble's, not the network's).

    Raises:
        ConfigError: as :func:`create_model`; ``members`` not a whole number >= 1, or set
            above 1 for an estimator.
    """
    count = member_count(kwargs, name)
    rest = {key: value for key, value in kwargs.items() if key != MEMBERS_KEY}
    return build_members(lambda: create_model(name, num_classes, in_channels, **rest), count,
                         name)


def refuse_prior(name: str) -> None:
    """Raise for an estimator, which predicts through its own members, so no class prior
    can shift its logits (``train.prior_weight``); return for a plain network.

    Raises:
        ConfigError: ``name`` is an estimator.
    """
    if name in _ESTIMATOR_CLASSES:
        raise ConfigError(f"train.prior_weight: {name} predicts through its own members, "
                          "so no prior can shift its logits; set it for plain networks "
                          f"(train.overrides.<arch>.prior_weight), not for {name}")


def create_classifier(name: str, num_classes: int, in_channels: int, *, mirror: bool = False,
                      shift: int = 0, prior: list[float] | None = None,
                      **kwargs: Any) -> Classifier:
    """Model ``name`` behind the one :class:`Classifier` interface.

    ``mirror`` and ``shift`` turn on test-time views (mirror, copies shifted ``shift`` px
    towards the corners) where the model supports them; ``prior`` adds per-class offsets to
    a plain network's logits (:mod:`components.models.prior`); ``members`` (in ``kwargs``)
    makes a plain network an ensemble of that many, trained apart
    (:mod:`components.models.ensemble`).

    Raises:
        ConfigError: as :func:`create_model`; ``prior`` given for an estimator, which
            predicts through its own members.
    """
    model = create_members(name, num_classes, in_channels, kwargs)
    if isinstance(model, Classifier):
        if prior:
            refuse_prior(name)
        return model
    return TorchClassifier(model, training_needs(name), mirror=mirror, shift=shift,
                           prior=prior)


def load_trained(run_dir: Path) -> tuple[ModelSpec, Classifier]:
    """Rebuild the trained model a run folder holds (``model.pt`` or ``model.pkl``).

    Raises:
        DataError: the folder holds neither, or the file is not a ferops model.
    """
    run_dir = Path(run_dir)
    if (run_dir / TORCH_FILE).exists():
        payload = torch.load(run_dir / TORCH_FILE, map_location="cpu", weights_only=False)
        spec = ModelSpec.from_dict(payload["spec"])
        net = create_members(spec.arch, spec.num_classes, spec.in_channels, spec.model_kwargs)
        net.load_state_dict(payload["state_dict"])
        return spec, TorchClassifier(net.eval(), training_needs(spec.arch),
                                     mirror=spec.tta_mirror, shift=spec.tta_shift,
                                     prior=spec.prior())
    if (run_dir / ESTIMATOR_FILE).exists():
        payload = joblib.load(run_dir / ESTIMATOR_FILE)
        return ModelSpec.from_dict(payload["spec"]), payload["estimator"]
    raise DataError(f"{run_dir}: no {TORCH_FILE} or {ESTIMATOR_FILE} (run the train stage)")


def expression_groups(run_dir: Path) -> list[list[str]] | None:
    """The expression groups a trained two-stage model merged, by class name (seed 002's
    units, read from the saved model: which expressions merge is a result of the grouping
    rule, not a setting); ``None`` for a run without a model or a model without groups.

    The names come from the model's class list and the groups' class indices.
    """
    run_dir = Path(run_dir)
    if not any((run_dir / name).exists() for name in (TORCH_FILE, ESTIMATOR_FILE)):
        return None
    spec, classifier = load_trained(run_dir)
    grouping = getattr(classifier, "grouping_", None)
    if grouping is None:
        return None
    names = list(spec.classes)
    return [[names[i] for i in unit] for unit in grouping.unit_indices]


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


def _accepted_kwargs(name: str) -> set[str]:
    accepted: set[str] = set()
    for source in _KWARG_SOURCES.get(name, (_BUILDERS[name],)):
        accepted |= set(inspect.signature(source).parameters)
    return accepted - _POSITIONAL


def _check_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    """Reject kwargs the architecture does not take, naming them and the accepted ones."""
    if name == "hierarchical":
        return  # its extra kwargs belong to the base CNN, checked when each one is built
    accepted = _accepted_kwargs(name)
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
