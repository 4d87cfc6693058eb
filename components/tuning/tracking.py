"""MLflow logging for studies: a parent run per invocation, a nested run per trial.

Written here rather than with optuna-integration's ``MLflowCallback`` (deprecated in Optuna
5): a callback only sees finished trials, while a nested run opened when the trial starts
can carry its per-epoch validation curve and still say how it ended (COMPLETE / PRUNED /
FAIL) in the ``state`` tag. Runs record host and pid, so a restart closes the runs a killed
worker left RUNNING (status KILLED) instead of leaving them open forever.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna

from components.tracking import ensure_experiment, flatten_params
from components.tracking.store import HOST_TAG, PID_TAG, close_dead_runs

log = logging.getLogger(__name__)

STUDY_TAG = "optuna.study"
TRIAL_TAG = "optuna.trial_number"
STATE_TAG = "state"


class StudyTracker:
    """Logs one study invocation to MLflow; every method is a no-op when disabled.

    Use as a context manager around ``study.optimize``; wrap each trial in :meth:`trial`.
    """

    def __init__(self, experiment: str, study: str, arch: str, *, enabled: bool = True) -> None:
        self.experiment = experiment
        self.study = study
        self.arch = arch
        self.enabled = enabled
        self.parent_id: str | None = None
        self.experiment_id: str | None = None

    # ---- parent run -------------------------------------------------------------------
    def __enter__(self) -> StudyTracker:
        if not self.enabled:
            return self
        import mlflow

        self.experiment_id = ensure_experiment(self.experiment)
        self.close_orphaned_runs()
        run = mlflow.start_run(run_name=f"tune-{self.arch}", tags=self._tags(stage="tune"))
        self.parent_id = run.info.run_id
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self.enabled or self.parent_id is None:
            return
        import mlflow

        mlflow.end_run(status="FINISHED" if exc_type is None else "FAILED")

    def log_settings(self, settings: Mapping[str, Any]) -> None:
        """Study-level settings (budget, metric, pruner, storage) as parent params."""
        if self.enabled:
            import mlflow

            mlflow.log_params(flatten_params(settings))

    def log_result(self, summary: Mapping[str, Any], files: list[Path]) -> None:
        """Best and chosen value and params, trial counts, and the outputs (plots, JSON) as
        artifacts."""
        if not self.enabled:
            return
        import mlflow

        counts = {k: summary[k] for k in ("n_trials", "complete", "pruned", "failed")}
        metrics = {f"trials_{k}": float(v) for k, v in counts.items()}
        for kind in ("best", "chosen"):
            if summary.get(f"{kind}_value") is not None:
                metrics[f"{kind}_value"] = float(summary[f"{kind}_value"])
            if summary.get(f"{kind}_trial") is not None:
                mlflow.set_tag(f"{kind}_trial", str(summary[f"{kind}_trial"]))
        mlflow.log_metrics(metrics)
        for kind in ("best", "chosen"):  # chosen: what training merges
            if summary.get(f"{kind}_params"):
                mlflow.log_params(flatten_params(summary[f"{kind}_params"], prefix=f"{kind}."))
        for path in files:
            mlflow.log_artifact(str(path), artifact_path="plots" if path.suffix == ".png" else None)

    # ---- nested trial runs ------------------------------------------------------------
    @contextmanager
    def trial(self, trial: optuna.Trial, params: Mapping[str, Any]) -> Iterator[None]:
        """A nested run for ``trial`` whose ``state`` tag says how the trial ended."""
        if not self.enabled:
            yield
            return
        import mlflow

        mlflow.start_run(run_name=f"trial-{trial.number}", nested=True,
                         tags=self._tags(**{TRIAL_TAG: str(trial.number)}))
        mlflow.log_params({**flatten_params(params), "arch": self.arch})
        state, status = "FAIL", "FAILED"
        try:
            yield
            state, status = "COMPLETE", "FINISHED"
        except optuna.TrialPruned:
            state, status = "PRUNED", "FINISHED"
            raise
        finally:
            mlflow.set_tag(STATE_TAG, state)
            mlflow.end_run(status=status)

    def log_epoch(self, row: Mapping[str, Any], step: int) -> None:
        """One epoch's numeric history values (val_uar, val_loss, ...) at ``step``."""
        if not self.enabled:
            return
        import mlflow

        values = {k: float(v) for k, v in row.items()
                  if k != "epoch" and isinstance(v, int | float) and not isinstance(v, bool)
                  and math.isfinite(float(v))}
        mlflow.log_metrics(values, step=step)

    def log_timings(self, timings: Mapping[str, float]) -> None:
        """The trial fit's wall-clock figures (images/s, seconds per epoch), as the train
        stage's run logs them: trials of a study that ran on several machines compare only
        at the speed each one trained."""
        if not self.enabled:
            return
        import mlflow

        finite = {k: float(v) for k, v in timings.items() if math.isfinite(float(v))}
        if finite:
            mlflow.log_metrics(finite)

    def log_value(self, value: float, seconds: float) -> None:
        """The trial's objective value and its wall time."""
        if self.enabled:
            import mlflow

            metrics = {"seconds": float(seconds)}
            if math.isfinite(value):
                metrics["value"] = float(value)
            mlflow.log_metrics(metrics)

    # ---- housekeeping -----------------------------------------------------------------
    def close_orphaned_runs(self) -> list[str]:
        """End (KILLED) this study's RUNNING runs whose process on this host is gone.

        Returns:
            The ids of the runs closed.
        """
        closed = close_dead_runs(self.experiment_id, f"tags.`{STUDY_TAG}` = '{self.study}'")
        if closed:
            log.warning("closed %d MLflow runs left open by a dead tuning worker", len(closed))
        return closed

    def _tags(self, **extra: str) -> dict[str, str]:
        return {STUDY_TAG: self.study, "arch": self.arch, HOST_TAG: socket.gethostname(),
                PID_TAG: str(os.getpid()), **extra}
