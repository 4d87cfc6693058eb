"""One training run end to end: load splits, fit, score every test split, write outputs.

Torch models go through :class:`~components.training.trainer.Trainer`; estimators
(``fit_inputs`` / ``predict_proba_inputs``) get their sub-models trained by the same loop via
:func:`~components.training.trainer.make_train_fn`. Both end in the same files, so the
evaluate stage and ``dvc metrics`` never special-case a model family.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import torch
from torch import nn

from components.data.manifest import DEDUP_SPLIT
from components.errors import DataError
from components.jsonio import write_json
from components.training.checkpoint import atomic_torch_save
from components.training.config import TrainConfig
from components.training.data import SplitData, load_split, occlusion_splits
from components.training.distributed import DistContext, current_context
from components.training.metrics import classification_report
from components.training.report import (
    flat_metrics,
    write_history_csv,
    write_run_outputs,
)
from components.training.trainer import ECSTFL_ARCHS, EpochCallback, Trainer, make_train_fn

log = logging.getLogger(__name__)

TORCH_FILE = "model.pt"
ESTIMATOR_FILE = "model.pkl"


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
    # Trained with ``train.tta_mirror``: its test metrics average each face with its mirror,
    # so the rebuilt model does too (see :class:`MirrorAverage`).
    tta_mirror: bool = False


class MirrorAverage(nn.Module):
    """Logits averaged over an input and its left-right mirror (test-time augmentation).

    :func:`load_trained` wraps a model trained with ``train.tta_mirror`` in it, so the
    evaluate stage, the registry's test metrics, the MLflow model, serving and the ONNX
    export all compute what the trainer scored. Idempotent: mirroring its input changes
    nothing, so evaluating it with ``tta_mirror`` on again gives the same logits.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of the wrapped model's logits on ``x`` and on ``x`` flipped along width."""
        return (_logits(self.model(x)) + _logits(self.model(torch.flip(x, dims=[-1])))) / 2


def _logits(out: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


NO_TTA_SUFFIX = "_notta"  # test splits scored once more without mirrored averaging


def test_splits(task_dir: Path) -> list[str]:
    """``test`` (the dataset's official test split), ``test_dedup`` when preprocess wrote it
    (the official split minus rows validation flagged, e.g. copies of training images), then
    the ``test_occ<pct>`` splits present by rising occlusion."""
    dedup = [DEDUP_SPLIT] if (Path(task_dir) / DEDUP_SPLIT).is_dir() else []
    return ["test", *dedup] + occlusion_splits(task_dir)


def load_inputs(
    task_dir: Path, split: str, inputs: tuple[str, ...], *, grey: bool = False
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Float32 arrays per modality (for estimators) and the labels of one split."""
    arrays = {m: load_split(task_dir, split, (m,), grey=grey).rows(slice(None)) for m in inputs}
    y = load_split(task_dir, split, inputs[:1]).y
    return arrays, y


def train_torch(
    model: nn.Module,
    spec: ModelSpec,
    cfg: TrainConfig,
    task_dir: Path,
    out_dir: Path,
    *,
    resume: bool = False,
    on_epoch_end: EpochCallback | None = None,
    ctx: DistContext | None = None,
) -> dict[str, Any]:
    """Train a torch model on ``task_dir`` and write model.pt + reports under ``out_dir``.

    Returns:
        The flat metrics (test splits, best epoch, epochs run); all ranks return them, only
        rank 0 writes files.

    Raises:
        DataError: a split is missing or empty.
    """
    ctx = ctx or current_context()
    splits = {s: load_split(task_dir, s, spec.inputs, grey=spec.grey) for s in ("train", "val")}
    trainer = Trainer(
        model, cfg, spec.classes, out_dir=out_dir, ecstfl=spec.arch in ECSTFL_ARCHS, ctx=ctx
    )
    result = trainer.fit(splits["train"], splits["val"], resume=resume, on_epoch_end=on_epoch_end)
    reports = {
        split: trainer.evaluate(load_split(task_dir, split, spec.inputs, grey=spec.grey))
        for split in test_splits(task_dir)
    }
    if cfg.tta_mirror:  # the same weights without test-time averaging, for comparison
        plain = Trainer(result.model, cfg.replace(tta_mirror=False, progress=False),
                        spec.classes, ctx=ctx)
        for split in [s for s in ("test", DEDUP_SPLIT) if s in reports]:
            data = load_split(task_dir, split, spec.inputs, grey=spec.grey)
            reports[f"{split}{NO_TTA_SUFFIX}"] = plain.evaluate(data)
    extra = {
        "best_epoch": result.best_epoch + 1,
        f"best_{cfg.monitor}": result.best_score,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "world_size": ctx.world_size,
    }
    if result.plan is not None:  # a budget run: how many epochs the machine's speed bought
        extra.update(epochs_planned=result.plan.epochs,
                     stopped_by_budget=result.stopped_by_budget,
                     probe_epoch_seconds=result.plan.epoch_seconds,
                     train_images_per_second=result.plan.train_images_per_second)
    if not ctx.is_main:
        return {**flat_metrics(reports), **extra}
    save_torch_model(result.model, spec, Path(out_dir) / TORCH_FILE)
    return write_run_outputs(out_dir, spec.classes, result.history, reports, extra, spec.arch)


def train_estimator(
    estimator: Any,
    spec: ModelSpec,
    cfg: TrainConfig,
    task_dir: Path,
    out_dir: Path,
) -> dict[str, Any]:
    """Fit an estimator (sub-models trained by the project loop) and write model.pkl + reports.

    The history has one row: validation scores of the fitted estimator, since estimators
    have no epochs.

    Returns:
        The flat metrics written to metrics.json.
    """
    x_train, y_train = load_inputs(task_dir, "train", spec.inputs, grey=spec.grey)
    rows = getattr(estimator, "training_rows", lambda n: 3.0 * n)(len(y_train))
    train_fn = make_train_fn(cfg, total_rows=rows)
    x_val, y_val = load_inputs(task_dir, "val", spec.inputs, grey=spec.grey)
    estimator.fit_inputs(x_train, y_train, train_fn, x_val, y_val)
    val_report = score_estimator(estimator, spec, task_dir, "val")
    history = [{"epoch": 1, **{f"val_{k}": val_report[k] for k in ("loss", "accuracy", "uar",
                                                                     "macro_f1")}}]
    reports = {split: score_estimator(estimator, spec, task_dir, split)
               for split in test_splits(task_dir)}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump({"spec": dataclasses.asdict(spec), "estimator": estimator},
                out_dir / ESTIMATOR_FILE)
    extra = {"val_uar": val_report["uar"], "epochs_run": 1}
    return write_run_outputs(out_dir, spec.classes, history, reports, extra, spec.arch)


def score_estimator(estimator: Any, spec: ModelSpec, task_dir: Path, split: str) -> dict[str, Any]:
    """Metrics of an estimator on one split (loss = mean negative log-likelihood)."""
    inputs, y = load_inputs(task_dir, split, spec.inputs, grey=spec.grey)
    proba = np.asarray(estimator.predict_proba_inputs(inputs), dtype=np.float64)
    report = classification_report(y, proba.argmax(axis=1), spec.classes)
    report["loss"] = float(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, None)).mean())
    return report


def save_torch_model(model: nn.Module, spec: ModelSpec, path: Path) -> Path:
    """Write ``{spec, state_dict}``: enough to rebuild with ``create_model`` and load."""
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    return atomic_torch_save({"spec": dataclasses.asdict(spec), "state_dict": state}, path)


def load_trained(
    run_dir: Path, build: Callable[[ModelSpec], Any]
) -> tuple[ModelSpec, Any, bool]:
    """Rebuild a trained model from a run folder.

    Args:
        build: makes an untrained torch model from a spec (e.g. via ``create_model``).

    Returns:
        ``(spec, model_or_estimator, is_torch)``.

    Raises:
        DataError: the folder holds neither model.pt nor model.pkl.
    """
    run_dir = Path(run_dir)
    if (run_dir / TORCH_FILE).exists():
        payload = torch.load(run_dir / TORCH_FILE, map_location="cpu", weights_only=False)
        spec = _spec(payload["spec"])
        model = build(spec)
        model.load_state_dict(payload["state_dict"])
        if spec.tta_mirror:
            model = MirrorAverage(model)
        return spec, model.eval(), True
    if (run_dir / ESTIMATOR_FILE).exists():
        payload = joblib.load(run_dir / ESTIMATOR_FILE)
        return _spec(payload["spec"]), payload["estimator"], False
    raise DataError(f"{run_dir}: no {TORCH_FILE} or {ESTIMATOR_FILE} (run the train stage)")


def _spec(values: dict[str, Any]) -> ModelSpec:
    values = dict(values)
    values["inputs"] = tuple(values["inputs"])
    return ModelSpec(**values)


def write_skipped(out_dir: Path, arch: str, reason: str) -> dict[str, Any]:
    """Record that ``arch`` was not trained (e.g. the data lacks its modalities)."""
    out_dir = Path(out_dir)
    metrics = {"skipped": True, "reason": reason}
    write_json(out_dir / "metrics.json", metrics)
    write_json(out_dir / "per_class.json", {"skipped": True, "reason": reason})
    write_history_csv([], out_dir / "history.csv")
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    log.warning("%s skipped: %s", arch, reason)
    return metrics


def score_torch(model: nn.Module, spec: ModelSpec, task_dir: Path, split: str,
                cfg: TrainConfig | None = None) -> dict[str, Any]:
    """Metrics of a trained torch model on one split (no training)."""
    cfg = cfg or TrainConfig(progress=False)
    trainer = Trainer(model, cfg, spec.classes, ctx=DistContext())
    return trainer.evaluate(load_split(task_dir, split, spec.inputs, grey=spec.grey))


def evaluate_any(model: Any, is_torch: bool, spec: ModelSpec, task_dir: Path, split: str,
                 cfg: TrainConfig | None = None) -> dict[str, Any]:
    """Score a torch model or an estimator on one split."""
    if is_torch:
        return score_torch(model, spec, task_dir, split, cfg)
    return score_estimator(model, spec, task_dir, split)


__all__ = [
    "ModelSpec",
    "SplitData",
    "evaluate_any",
    "load_inputs",
    "load_trained",
    "MirrorAverage",
    "save_torch_model",
    "test_splits",
    "train_estimator",
    "train_torch",
    "write_skipped",
]
