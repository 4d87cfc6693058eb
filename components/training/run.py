"""One training run end to end: load splits, fit, score every test split, write outputs.

Every model is a :class:`~components.models.Classifier`: it fits through the project loop
(:class:`~components.training.loop.TrainerLoop`) and predicts probabilities, so the run,
the evaluate stage and ``dvc metrics`` never ask which family a model belongs to. A model
without epochs (the estimators) gets one history row: its validation scores.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from components.data.manifest import DEDUP_SPLIT
from components.jsonio import write_json
from components.models import Classifier, FitOutcome, ModelSpec
from components.models.simple_fit import inference_on
from components.training.config import TrainConfig
from components.training.data import SplitData, load_split, occlusion_splits
from components.training.distributed import DistContext, current_context
from components.training.loop import TrainerLoop
from components.training.metrics import classification_report
from components.training.report import SCALARS, write_history_csv, write_run_outputs
from components.training.trainer import EpochCallback, resolve_device

log = logging.getLogger(__name__)

NO_TTA_SUFFIX = "_notta"  # test splits scored once more without mirrored averaging
PREDICTIONS_FILE = "predictions.json"  # per-sample labels and predictions of each test split


def test_splits(task_dir: Path) -> list[str]:
    """``test`` (the dataset's official test split), ``test_dedup`` when preprocess wrote it
    (the official split minus rows validation flagged, e.g. copies of training images), then
    the ``test_occ<pct>`` splits present by rising occlusion."""
    dedup = [DEDUP_SPLIT] if (Path(task_dir) / DEDUP_SPLIT).is_dir() else []
    return ["test", *dedup] + occlusion_splits(task_dir)


def score_data(classifier: Classifier, data: SplitData, classes: list[str]) -> dict[str, Any]:
    """Metrics of ``classifier`` on ``data`` (loss = mean negative log-likelihood), with the
    per-sample ``labels`` and ``predictions`` (what a paired significance test needs)."""
    proba = np.asarray(classifier.predict_proba(data.rows(slice(None))), dtype=np.float64)
    predicted = proba.argmax(axis=1)
    report = classification_report(data.y, predicted, classes)
    picked = proba[np.arange(len(data.y)), data.y]
    report["loss"] = float(-np.log(np.clip(picked, 1e-12, None)).mean())
    report["labels"], report["predictions"] = np.asarray(data.y), predicted
    return report


def score(classifier: Classifier, spec: ModelSpec, task_dir: Path, split: str) -> dict[str, Any]:
    """Metrics of a trained model on one split of its task (no training)."""
    return score_data(classifier, load_split(task_dir, split, spec.inputs, grey=spec.grey),
                      spec.classes)


def score_test_splits(classifier: Classifier, spec: ModelSpec,
                      task_dir: Path) -> dict[str, dict[str, Any]]:
    """Reports of every test split, and of the official ones once more without test-time
    averaging where the model averages views (the same weights, one view, for comparison)."""
    reports = {split: score(classifier, spec, task_dir, split) for split in test_splits(task_dir)}
    if spec.tta_mirror or spec.tta_shift:
        plain = classifier.without_tta()
        for split in [s for s in ("test", DEDUP_SPLIT) if s in reports]:
            reports[f"{split}{NO_TTA_SUFFIX}"] = score(plain, spec, task_dir, split)
    return reports


def fit_classifier(classifier: Classifier, train: SplitData, val: SplitData,
                   loop: TrainerLoop, classes: list[str], monitor: str) -> FitOutcome:
    """``classifier.fit`` through ``loop``; a model without epochs gets one history row of
    validation scores and its best monitored value from it, and the epoch rows of the
    networks it trained through ``loop`` as its ``sub_model_history``."""
    outcome = classifier.fit(train, val, loop)
    if outcome.history:
        return outcome
    report = score_data(classifier, val, classes)
    row = {"epoch": 1, **{f"val_{k}": report[k] for k in ("loss", *SCALARS)}}
    extra = {"epochs_run": 1, f"best_{monitor}": row[monitor], **outcome.extra}
    return FitOutcome([row], float(row[monitor]), extra, outcome.timings,
                      outcome.sub_model_history or list(loop.sub_model_history))


def train_run(
    classifier: Classifier,
    spec: ModelSpec,
    cfg: TrainConfig,
    task_dir: Path,
    out_dir: Path,
    *,
    resume: bool = False,
    on_epoch_end: EpochCallback | None = None,
    on_timings: Callable[[dict[str, float]], None] | None = None,
    ctx: DistContext | None = None,
) -> dict[str, Any]:
    """Train ``classifier`` on ``task_dir``; rank 0 writes the model file and reports.

    ``on_timings`` receives the fit's wall-clock figures (images/s, seconds per epoch; empty
    for a model whose networks are fitted inside an estimator): they depend on the machine,
    so they go to the caller (the MLflow run) and not into ``metrics.json``.

    Returns:
        The flat metrics written to ``metrics.json`` (test splits, best epoch, epochs run);
        other ranks return ``{}``.

    Raises:
        DataError: a split is missing or empty.
    """
    ctx = ctx or current_context()
    train, val = (load_split(task_dir, s, spec.inputs, grey=spec.grey) for s in ("train", "val"))
    loop = TrainerLoop(cfg, spec.classes, out_dir=out_dir, resume=resume,
                       on_epoch_end=on_epoch_end, ctx=ctx)
    outcome = fit_classifier(classifier, train, val, loop, spec.classes, cfg.monitor)
    if not ctx.is_main:
        return {}
    outcome.extra["world_size"] = ctx.world_size
    if on_timings is not None:
        on_timings(outcome.timings)
    with inference_on(resolve_device(cfg.device, ctx)):  # the trained model stays a CPU model
        reports = score_test_splits(classifier, spec, task_dir)
    classifier.save(out_dir, spec)
    write_json(Path(out_dir) / PREDICTIONS_FILE, {
        split: {"labels": r["labels"], "predictions": r["predictions"]}
        for split, r in reports.items()})
    return write_run_outputs(out_dir, spec.classes, outcome.history, reports, outcome.extra,
                             spec.arch, sub_model_history=outcome.sub_model_history)


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


__all__ = [
    "NO_TTA_SUFFIX",
    "PREDICTIONS_FILE",
    "fit_classifier",
    "score",
    "score_data",
    "test_splits",
    "train_run",
    "write_skipped",
]
