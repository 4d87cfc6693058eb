"""One MLflow run per final training run: params, lineage, curves, scores, plots, model.

The run is opened before training starts, so system metrics (CPU, memory) cover the fit and
a crash leaves a FAILED run instead of nothing; results are logged once the trainer has
written its outputs (``metrics.json``, ``history.csv``, ``plots/``, ``model.pt|pkl``), so what
MLflow shows is exactly what DVC tracks. The run id and model URI are written to
``artifacts/tracking/train/<arch>.json`` (beside the run folders) for the registry.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import logging
import math
import os
import re
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.jsonio import write_json
from components.machine import cpu_model, git_commit
from components.models import ModelSpec
from components.tracking.lineage import Lineage, collect_lineage
from components.tracking.store import (
    HOST_TAG,
    PID_TAG,
    TrackingError,
    close_dead_runs,
    ensure_experiment,
    experiment_name,
    flatten_params,
    lineage_root,
    run_record_path,
    tracking_uri,
)
from components.tracking.views import leaderboard_columns, share_view
from components.training.config import TrainConfig

log = logging.getLogger(__name__)

CODE_ROOT = Path(__file__).resolve().parents[2]  # the ferops checkout whose code is running
# Trainer-config keys that describe the whole study, not this run.
STUDY_KEYS: frozenset[str] = frozenset({"architectures", "overrides", "model_kwargs"})
OUTPUT_FILES: tuple[str, ...] = ("metrics.json", "per_class.json", "history.csv",
                                 "sub_models.csv", "predictions.json")


@dataclass
class RunSetup:
    """What is known about a training run before it starts."""

    spec: ModelSpec
    cfg: TrainConfig
    task_dir: Path
    out_dir: Path
    params: dict[str, Any]  # the whole params mapping (lineage reads ``ingest``)


ServingLogger = Callable[[Path, Path], str]


def system_metrics_available() -> bool:
    """MLflow samples CPU/memory with psutil; without it the run is logged without them."""
    return importlib.util.find_spec("psutil") is not None


@contextmanager
def tracked_training(setup: RunSetup, *, enabled: bool = True) -> Iterator[TrainingRun | None]:
    """Open the MLflow run of a training run; yields None when tracking is off.

    The experiment is ``ferops/<task>/<dataset>``. An exception inside the block ends the run
    as FAILED and propagates.

    Raises:
        TrackingError: the store is unreachable or refuses the run.
        DataError: a lineage file (manifest, data.dvc) exists but is unreadable.
    """
    if not enabled:
        yield None
        return
    import mlflow
    from mlflow.exceptions import MlflowException

    # Runs are written to the project's store, but lineage (data.dvc, the commit) is read
    # from the checkout that ran: inside a queued DVC experiment copy the original
    # workspace may have moved on by the time the experiment runs.
    root = lineage_root()
    lineage = collect_lineage(setup.task_dir, setup.params, root)
    experiment_id = ensure_experiment(experiment_name(setup.spec.task, lineage.dataset))
    mark_dead_runs_killed(experiment_id)
    try:
        active = mlflow.start_run(
            experiment_id=experiment_id,
            run_name=run_name(setup),
            tags=run_tags(setup, lineage, root),
            log_system_metrics=system_metrics_available(),
        )
    except MlflowException as exc:
        raise TrackingError(f"MLflow store {tracking_uri()}: cannot start a run ({exc})") from exc
    with active:
        run = TrainingRun(active.info.run_id, experiment_id, setup, lineage)
        run.log_setup()
        yield run


def mark_dead_runs_killed(experiment_id: str) -> list[str]:
    """End as KILLED the training runs left RUNNING by a process on this machine that is
    gone (see :func:`~components.tracking.store.close_dead_runs`). Returns their ids."""
    closed = close_dead_runs(experiment_id)
    if closed:
        log.warning("marked KILLED %d MLflow run(s) left RUNNING by a process that is gone: %s",
                    len(closed), ", ".join(closed))
    return closed


def write_untracked_record(out_dir: Path, arch: str, reason: str, **facts: Any) -> Path:
    """The run record of a run with no MLflow run (tracking off, or the architecture was
    skipped): the file DVC expects exists and tells the registry there is nothing to
    register. ``facts`` (a run's timings and what it computed on) go with it: the record is
    not cached, so machine-dependent figures belong here and not in metrics.json."""
    return write_json(run_record_path(out_dir), {"tracked": False, "arch": arch,
                                                 "reason": reason, **facts})


def run_name(setup: RunSetup) -> str:
    """``<arch>-seed<seed>``: readable in the UI's run list and unique within a study."""
    return f"{setup.spec.arch}-seed{setup.cfg.seed}"


def compute_tags(cfg: TrainConfig) -> dict[str, str]:
    """What the run computed on: the CPU, the instruction set torch's kernels ran at (AVX2
    under the pipeline's cap, higher under ``train.isa: native``), the device
    ``train.device`` resolved to (and the GPU's name) and the precision ``train.precision``
    resolved to. Timings and, off the cap, the bytes depend on them."""
    import torch

    from components.training.trainer import resolve_device, resolve_precision

    device = resolve_device(cfg.device)
    tags = {"machine.cpu": cpu_model(),
            "machine.kernels": torch.backends.cpu.get_cpu_capability(),
            "train.device_used": device.type,
            "train.precision_used": resolve_precision(cfg.precision, device)}
    if device.type == "cuda":
        tags["machine.gpu"] = torch.cuda.get_device_name(device)
    return tags


def run_tags(setup: RunSetup, lineage: Lineage, root: Path) -> dict[str, str]:
    """Tags to filter and group runs by in the UI (and the git commit that produced it)."""
    tags = {
        "mlflow.note.content": run_description(setup, lineage),
        "architecture": setup.spec.arch,
        "task": setup.spec.task,
        "dataset": lineage.dataset,
        "seed": str(setup.cfg.seed),
        "stage": "train",
        "data.manifest_digest": lineage.digest,
        "recipe": str(setup.params.get("recipe") or "custom"),
        **compute_tags(setup.cfg),
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(os.getpid()),
    }
    exp_name = os.environ.get("DVC_EXP_NAME")  # set by `dvc exp run` for every stage
    if exp_name:
        tags["dvc.exp_name"] = exp_name
    commit = git_commit(root, mark_dirty=False) or git_commit(CODE_ROOT, mark_dirty=False)
    if commit:
        tags["git_commit"] = commit
        tags["mlflow.source.git.commit"] = commit  # what the UI shows as the run's source
    if lineage.dvc_md5:
        tags["data.dvc_md5"] = lineage.dvc_md5
    return tags


def run_description(setup: RunSetup, lineage: Lineage) -> str:
    """The run's one-paragraph description (the UI's Description box): what was trained on
    what, with which budget, and what it takes as input."""
    cfg, spec = setup.cfg, setup.spec
    recipe = setup.params.get("recipe") or "custom"
    return (f"{spec.arch} trained from scratch on {lineage.dataset} ({spec.task} task, recipe "
            f"{recipe}, seed {cfg.seed}): up to {cfg.epochs} epochs, batch {cfg.batch_size}, "
            f"{cfg.optimizer} at lr {cfg.lr:g}. Input: {', '.join(spec.inputs)}; "
            f"{len(spec.classes)} classes. Plots at the artifact root compare across runs.")


def run_params(setup: RunSetup, lineage: Lineage) -> dict[str, str]:
    """Every setting of the run, flattened: ``train.*``, ``model.*``, ``preprocess.*``,
    ``augment.*`` and ``data.*`` (the raw data's DVC md5 and the manifest digest)."""
    train = {k: v for k, v in dataclasses.asdict(setup.cfg).items() if k not in STUDY_KEYS}
    spec = setup.spec
    model = {
        "arch": spec.arch, "num_classes": spec.num_classes, "in_channels": spec.in_channels,
        "inputs": ",".join(spec.inputs), "grey": spec.grey, "classes": ",".join(spec.classes),
        **spec.model_kwargs,
    }
    data = {"task": spec.task, "dataset": lineage.dataset, "manifest_digest": lineage.digest,
            "source": lineage.source}
    if lineage.dvc_md5:
        data["dvc_md5"] = lineage.dvc_md5
    values: dict[str, Any] = {"train": train, "model": model, "data": data}
    values.update(lineage.stage_params)
    return flatten_params(values)


class TrainingRun:
    """The active MLflow run of one training run (created by :func:`tracked_training`)."""

    def __init__(self, run_id: str, experiment_id: str, setup: RunSetup, lineage: Lineage):
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.setup = setup
        self.lineage = lineage

    def log_setup(self) -> None:
        """Params and the dataset input: known before training, logged at once."""
        import mlflow
        import mlflow.data

        mlflow.log_params(run_params(self.setup, self.lineage))
        lineage = self.lineage
        with warnings.catch_warnings():
            # MLflow registers local paths under two schemes and warns that it picked one.
            warnings.filterwarnings("ignore", message="The specified dataset source can be")
            # The hint concerns model signatures; a dataset schema here only documents columns.
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
            dataset = mlflow.data.from_pandas(
                lineage.frame,
                source=lineage.source,
                name=f"{lineage.dataset}/{self.setup.spec.task}",
                digest=lineage.digest[:36],  # MLflow caps dataset digests at 36 characters
                targets="label" if "label" in lineage.frame else None,
            )
            mlflow.log_input(dataset, context="training")  # computes the schema (warns)

    def log_results(
        self, metrics: dict[str, Any], log_serving: ServingLogger | None = None
    ) -> dict[str, Any]:
        """Log curves, scores, plots, reports and the model; write the run record.

        Args:
            metrics: the flat metrics the trainer returned (as in ``metrics.json``).
            log_serving: logs the raw-input serving model of ``(run folder, task folder)``
                to the active run and returns its URI (the train stage passes serving's
                logger, so tracking does not depend on serving).

        Returns:
            The record written to :func:`run_record_path` of ``out_dir``.

        Raises:
            DataError: the run folder lacks the trained model.
        """
        import mlflow

        from components.tracking.models import log_trained_model

        out_dir = Path(self.setup.out_dir)
        self.log_history(out_dir / "history.csv")
        self.log_history(out_dir / "sub_models.csv")  # an estimator's networks
        mlflow.log_metrics(final_metrics(metrics), synchronous=True)
        if "stopped_early" in metrics:
            mlflow.set_tag("stopped_early", str(bool(metrics["stopped_early"])).lower())
        self.log_artifacts(out_dir)
        logged = log_trained_model(out_dir, self.setup.task_dir)
        serving_uri = log_serving(out_dir, self.setup.task_dir) if log_serving else None
        digests = self.log_test_digests()
        mlflow.log_metric("latency_ms", logged.latency_ms, synchronous=True)
        scores = final_metrics(metrics)
        ui_path = share_view(
            self.experiment_id, leaderboard_columns(scores),
            order_by="metrics.`test_uar`" if "test_uar" in scores else None,
        )
        record = {
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "experiment_name": experiment_name(self.setup.spec.task, self.lineage.dataset),
            "tracking_uri": mlflow.get_tracking_uri(),
            "model_uri": logged.model_uri,
            "logged_model_uri": logged.logged_model_uri,
            "model_id": logged.model_id,
            "flavor": logged.flavor,
            "serving_uri": serving_uri,
            "test_digest": digests["test"],
            "test_digests": digests,
            "latency_ms": logged.latency_ms,
            "arch": self.setup.spec.arch,
            "task": self.setup.spec.task,
            "dataset": self.lineage.dataset,
            "ui_path": ui_path,
        }
        write_json(run_record_path(out_dir), record)
        log.info("tracked %s as MLflow run %s (%s)", self.setup.spec.arch, self.run_id,
                 logged.model_uri)
        return record

    def log_timings(self, timings: dict[str, float]) -> None:
        """The fit's wall-clock figures (images/s, seconds per epoch) as run metrics: they
        describe the machine, so they live here and never in the stage's cached outputs."""
        import mlflow

        finite = {k: float(v) for k, v in timings.items() if math.isfinite(float(v))}
        if finite:
            mlflow.log_metrics(finite, synchronous=True)

    def log_test_digests(self) -> dict[str, str]:
        """Fingerprint every test split the run was scored on (clean, de-duplicated,
        occluded) and tag the clean one as ``data.test_digest``: the registry's gate only
        compares models scored on the same data, for whichever split its metric names.
        Returns ``{split: digest}``."""
        import mlflow

        from components.training.digest import test_digest
        from components.training.run import test_splits

        task_dir = Path(self.setup.task_dir)
        digests = {split: test_digest(task_dir, split) for split in test_splits(task_dir)}
        mlflow.set_tag("data.test_digest", digests["test"])
        return digests

    def log_history(self, path: Path) -> None:
        """Every numeric column of an epoch table (``history.csv``, ``sub_models.csv``) as
        a metric with step = epoch; a row's ``part`` (an estimator's network) prefixes its
        keys (``second_fear_surprise/val_uar``), so the MLflow UI charts each network."""
        from mlflow import MlflowClient
        from mlflow.entities import Metric

        if not path.is_file():
            return
        now = int(time.time() * 1000)
        points = []
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                step = int(float(row["epoch"]))
                prefix = metric_prefix(row.get("part") or "")
                for key, text in row.items():
                    value = _number(text)
                    if key not in ("epoch", "part") and value is not None:
                        points.append(Metric(prefix + key, value, now, step))
        if points:
            MlflowClient().log_batch(self.run_id, metrics=points, synchronous=True)

    def log_artifacts(self, out_dir: Path) -> None:
        """Plots at the artifact root, the trainer's reports under ``reports/``, and the
        validation summary under ``validation/`` when the validate stage left one.

        The plots sit at the root because MLflow's compare page only offers the root files
        that every compared run has: there the confusion matrices and learning curves of
        several runs show side by side."""
        import mlflow

        plots = out_dir / "plots"
        if plots.is_dir() and any(plots.iterdir()):
            mlflow.log_artifacts(str(plots))
        for name in OUTPUT_FILES:
            if (out_dir / name).is_file():
                mlflow.log_artifact(str(out_dir / name), artifact_path="reports")
        if self.lineage.validation_summary is not None:
            mlflow.log_artifact(str(self.lineage.validation_summary), artifact_path="validation")


def final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite numeric scalars of ``metrics.json`` (flags and text stay out)."""
    return {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
        and math.isfinite(float(value))
    }


def metric_prefix(part: str) -> str:
    """``"second (fear + surprise)"`` -> ``"second_fear_surprise/"``: an MLflow metric key
    prefix (letters, digits and underscores) for an estimator's network; ``""`` for none."""
    key = re.sub(r"[^0-9A-Za-z]+", "_", part).strip("_").lower()
    return f"{key}/" if key else ""


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None
