"""One classifier interface for every model family: ``fit(train, val, loop)``,
``predict_proba(x)`` and what the model declares about itself.

The train and tune stages, evaluation, tracking, serving and ONNX export all talk to a
:class:`Classifier`; none of them asks which family a model belongs to. A plain network is
wrapped in :class:`TorchClassifier`, whose ``fit`` hands the network to the training loop;
the estimators (``svm_fusion``, ``hierarchical``) subclass :class:`Classifier` and train
their sub-networks through the same loop. The loop itself lives in ``components.training``
and is passed in (:class:`FitLoop`), so models never import the trainer.

Inputs are always one channel-stacked float32 batch, ``(N, C, H, W)`` for stills or
``(N, T, C, H, W)`` for clips, in ``MODEL_INPUTS`` order: a model that reads several
modalities cuts the batch itself, because it knows its own channel layout.
"""

from __future__ import annotations

import dataclasses
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from components.atomic import atomic_write
from components.models import persist
from components.models.contract import LogitsOnly, logits_of, tta_views
from components.models.ensemble import SeedEnsemble
from components.models.prior import PriorShift, prior_offsets
from components.models.simple_fit import TrainFn, in_eval_mode, predict_features, predict_proba

TORCH_FILE = "model.pt"  # a network: {spec, state_dict}
ESTIMATOR_FILE = "model.pkl"  # any other classifier: {spec, estimator}, persist.dump


class Dataset(Protocol):
    """What ``fit`` reads: labels and rows of channel-stacked float32 samples."""

    y: np.ndarray

    def __len__(self) -> int: ...

    def rows(self, index: slice | np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class TrainingNeeds:
    """What a model asks of training and inference, declared by the model itself.

    Attributes:
        ecstfl: add EC-STFL on the penultimate features and draw class-aware batches
            (the network's ``forward`` must accept ``return_features=True``).
        distributed: trains data-parallel across processes; otherwise it fits on rank 0.
        test_time_views: its predictions may average test-time views of each input (its
            mirror, shifted copies); an estimator that predicts through its own members
            does not.
    """

    ecstfl: bool = False
    distributed: bool = True
    test_time_views: bool = True


@dataclass
class FitOutcome:
    """What a fit reports: per-epoch history rows (empty for a model without epochs), the
    best monitored validation value (None: the caller scores validation once), extra
    figures for ``metrics.json`` (best epoch, epochs run, budget plan, ...) and the fit's
    wall-clock figures (images/s, seconds per epoch), which depend on the machine and so
    stay out of ``metrics.json``: tracking logs them to the MLflow run only.
    ``sub_model_history`` holds an estimator's networks' epoch rows, each tagged with the
    network's ``part`` (empty for a plain network: its own rows are ``history``)."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    sub_model_history: list[dict[str, Any]] = field(default_factory=list)


class FitLoop(Protocol):
    """The project's training loop, as a classifier's ``fit`` sees it."""

    def fit_network(self, net: nn.Module, train: Dataset, val: Dataset, *,
                    ecstfl: bool) -> tuple[nn.Module, FitOutcome]:
        """Train ``net`` (checkpoints, budget, early stopping); returns its best weights."""
        ...

    def sub_model_fn(self, total_rows: float) -> TrainFn:
        """A ``train_fn`` for sub-networks; a time budget is shared over ``total_rows``."""
        ...


@dataclass
class ModelSpec:
    """Everything needed to rebuild a trained model and feed it the right arrays."""

    arch: str
    num_classes: int
    in_channels: int
    inputs: tuple[str, ...]
    task: str
    classes: list[str]
    grey: bool = False
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    # Trained with ``train.tta_mirror`` / ``train.tta_shift``: its test metrics average each
    # face over those views, so the rebuilt model does too (see :class:`ViewAverage`).
    tta_mirror: bool = False
    tta_shift: int = 0
    # Trained with ``train.prior_weight``: it predicts from logits + prior_weight x log_prior
    # (the training labels' log class shares; components/models/prior.py).
    prior_weight: float = 0.0
    log_prior: list[float] | None = None

    def prior(self) -> list[float] | None:
        """The offsets its logits get when predicting, or None for the plain argmax."""
        return prior_offsets(self.prior_weight, self.log_prior)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelSpec:
        """The spec saved beside the weights (``inputs`` back to a tuple)."""
        values = dict(values)
        values["inputs"] = tuple(values["inputs"])
        return cls(**values)


class Classifier(ABC):
    """The contract every model family meets (scikit-learn style, with the loop injected)."""

    needs: ClassVar[TrainingNeeds] = TrainingNeeds()

    @abstractmethod
    def fit(self, train: Dataset, val: Dataset, loop: FitLoop) -> FitOutcome:
        """Train on ``train``, selecting on ``val``, through ``loop``."""

    @abstractmethod
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Per-class probabilities ``(N, num_classes)``, rows summing to 1."""

    def network(self) -> nn.Module | None:
        """The single network mapping the stacked input to logits, if the model is one
        (what ONNX export and MLflow's pytorch flavor need); None otherwise."""
        return None

    def without_tta(self) -> Classifier:
        """The same trained model predicting without test-time averaging."""
        return self

    def feature_vectors(self, x: np.ndarray) -> np.ndarray | None:
        """Per-input feature vectors ``(N, d)`` where the model exposes them (the layer its
        feature loss acts on: C3D's fc7 or fc6); None for models that do not."""
        return None

    def members(self) -> dict[str, Classifier]:
        """Trained parts that score on their own from the same stacked input (an ensemble's
        ablation, e.g. svm_fusion's depth and colour networks); empty for a single model."""
        return {}

    def training_rows(self, n_train: int) -> float:
        """Rows all of its fits train on together (how a time budget is shared)."""
        return float(n_train)

    def save(self, out_dir: Path, spec: ModelSpec) -> Path:
        """Write the trained model beside its spec; returns the file."""
        payload = {"spec": dataclasses.asdict(spec), "estimator": self}
        return persist.save(payload, Path(out_dir) / ESTIMATOR_FILE)


class MemberClassifier(Classifier):
    """One trained part of a fitted model, scored alone: ``predict_proba`` only.

    Args:
        proba: maps the parent's stacked input to this part's class probabilities.
    """

    def __init__(self, proba: Callable[[np.ndarray], np.ndarray]) -> None:
        self._proba = proba

    def fit(self, train: Dataset, val: Dataset, loop: FitLoop) -> FitOutcome:
        """Refused: a member is trained by its parent."""
        raise NotImplementedError("a member of a fitted model is trained by its parent")

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """The member's class probabilities on the parent's stacked input."""
        return np.asarray(self._proba(x))


class ViewAverage(nn.Module):
    """Logits averaged over test-time views of each input (:func:`tta_views`): its
    left-right mirror and/or copies shifted towards the corners.

    A model trained with ``train.tta_mirror`` / ``train.tta_shift`` predicts through it, so
    the evaluate stage, the registry's test metrics, the MLflow model, serving and the ONNX
    export all compute what the trainer scored.
    """

    def __init__(self, model: nn.Module, mirror: bool = True, shift: int = 0) -> None:
        super().__init__()
        self.model = model
        self.mirror = mirror
        self.shift = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of the wrapped model's logits over the views of ``x``.

        One pass over every view stacked: for a served photo (batch 1) a pass per view would
        pay every layer's fixed overhead once per view.
        """
        views = tta_views(x, self.mirror, self.shift)
        out = logits_of(self.model(torch.cat(views)))
        n = len(x)
        total = out[:n]
        for index in range(1, len(views)):
            total = total + out[index * n : (index + 1) * n]
        return total / len(views)


class TorchClassifier(Classifier):
    """A plain network behind the classifier interface.

    Args:
        net: returns logits (or ``(logits, features)``) from ``forward(x)``.
        needs: what its training needs (e.g. EC-STFL for ``c3d_ecstfl``).
        mirror, shift: predict on the mean logits of the test-time views
            (:func:`~components.models.contract.tta_views`), where ``needs`` allows them.
        prior: per-class offsets added to those logits (:meth:`ModelSpec.prior`), or None.
    """

    def __init__(self, net: nn.Module, needs: TrainingNeeds = TrainingNeeds(), *,
                 mirror: bool = False, shift: int = 0,
                 prior: list[float] | None = None) -> None:
        self.net = net
        self.needs = needs  # type: ignore[misc]  # per instance: the registry declares it
        self.mirror = mirror and needs.test_time_views
        self.shift = shift if needs.test_time_views else 0
        self.prior = list(prior) if prior else None
        self._wrapped: tuple[nn.Module, nn.Module] | None = None  # (net, its wrapper)

    def fit(self, train: Dataset, val: Dataset, loop: FitLoop) -> FitOutcome:
        """Train the network through the loop and keep its best validated weights."""
        self.net, outcome = loop.fit_network(self.net, train, val, ecstfl=self.needs.ecstfl)
        return outcome

    def network(self) -> nn.Module:
        """The network in eval mode, one logits output, averaged over its test-time views
        and shifted by its class prior offsets.

        The wrapper is built once per network (``fit`` may replace it): a fresh one would
        start in training mode and pay a walk over every module on each served photo.
        """
        if self._wrapped is None or self._wrapped[0] is not self.net:
            net = LogitsOnly(self.net)
            views = self.mirror or self.shift > 0
            wrapped = ViewAverage(net, self.mirror, self.shift) if views else net
            self._wrapped = (self.net, PriorShift(wrapped, self.prior) if self.prior else wrapped)
        return in_eval_mode(self._wrapped[1])

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Softmax of the (view-averaged) logits, in batches."""
        return predict_proba(self.network(), x)

    def members(self) -> dict[str, Classifier]:
        """A seed ensemble's networks alone, each with the same test-time views (``member1``,
        ...): what averaging them buys over each one; empty for a single network."""
        if not isinstance(self.net, SeedEnsemble):
            return {}
        return {f"member{index}": TorchClassifier(net, self.needs, mirror=self.mirror,
                                                  shift=self.shift, prior=self.prior)
                for index, net in enumerate(self.net.members, start=1)}

    def feature_vectors(self, x: np.ndarray) -> np.ndarray | None:
        """The network's features when its forward takes ``return_features`` (C3D)."""
        if "return_features" not in inspect.signature(self.net.forward).parameters:
            return None
        return predict_features(self.net, x)

    def without_tta(self) -> TorchClassifier:
        """The same weights and decision rule, one pass per input."""
        return TorchClassifier(self.net, self.needs, mirror=False, prior=self.prior)

    def save(self, out_dir: Path, spec: ModelSpec) -> Path:
        """Write ``{spec, state_dict}`` to ``model.pt``: rebuilt by ``create_model``."""
        state = {k: v.contiguous() for k, v in self.net.state_dict().items()}
        payload = {"spec": dataclasses.asdict(spec), "state_dict": state}
        return atomic_write(Path(out_dir) / TORCH_FILE, lambda handle: torch.save(payload, handle))
