"""One tuning invocation end to end: open the study, run trials, write the results.

Outputs under the stage folder (``artifacts/tune/<arch>/``): ``chosen_params.json`` (flat
``{name: value}``, what the train stage merges when ``train.use_tuned`` is true),
``study.json`` (counts per state, best trial and value, storage), ``plots/*.png`` and, with
the default storage, ``journal.log`` (the study itself, resumable).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna

from components.jsonio import write_json
from components.models import MODEL_INPUTS
from components.tracking import experiment_name
from components.training.data import task_name
from components.tuning.config import TuneConfig
from components.tuning.objective import Objective
from components.tuning.plots import write_plots
from components.tuning.study import (
    describe_storage,
    fail_orphaned_trials,
    is_shared,
    open_storage,
    open_study,
    storage_url,
    study_fingerprint,
    study_name,
    study_summary,
)
from components.tuning.tracking import StudyTracker

log = logging.getLogger(__name__)

CHOSEN_PARAMS_FILE = "chosen_params.json"
STUDY_FILE = "study.json"
PLOTS_DIR = "plots"


def tune_architecture(
    arch: str,
    cfg: TuneConfig,
    train_values: dict[str, Any],
    task_dir: Path,
    out_dir: Path,
    *,
    dataset: str,
    n_trials: int | None = None,
    storage: str | None = None,
) -> dict[str, Any]:
    """Add ``n_trials`` (default ``cfg.n_trials``) trials to the study of ``arch`` and
    write chosen_params.json, study.json and plots under ``out_dir``.

    Returns:
        The ``study.json`` content.

    Raises:
        ConfigError: a bad search space, trial setting or storage URL.
        DataError: unreadable preprocessed arrays.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    space = cfg.space(arch)
    queued = cfg.queued(arch)
    name = study_name(arch, dataset, study_fingerprint(arch, task_dir, cfg, train_values))
    url = storage_url(out_dir, storage)
    task = task_name(task_dir, MODEL_INPUTS[arch])
    tracker = StudyTracker(experiment_name(task, dataset), name, arch, enabled=cfg.track)
    objective = Objective(arch, train_values, task_dir, cfg, space, tracker)
    objective.check()
    study = open_study(name, open_storage(url, cfg.heartbeat_interval), cfg,
                       shared=is_shared(url))
    for params in queued:
        study.enqueue_trial(params, skip_if_exists=True)
    budget = n_trials or cfg.n_trials
    log.info("study %s: %d trials so far, adding %d (storage %s)", name,
             len(study.get_trials(deepcopy=False)), budget, describe_storage(url))
    settings = {"arch": arch, "study": name, "task": task, "dataset": dataset,
                "storage": describe_storage(url), "trials_added": budget, "timeout": cfg.timeout,
                "epochs": cfg.epochs, "metric": cfg.metric, "direction": cfg.direction,
                "sampler_seed": cfg.sampler_seed, "pruner": cfg.pruner}
    with tracker:
        tracker.log_settings(settings)
        study.optimize(
            objective, n_trials=budget, timeout=cfg.timeout,
            callbacks=[lambda s, _t: fail_orphaned_trials(s)],
            show_progress_bar=cfg.progress,
        )
        summary = write_outputs(study, out_dir, settings, min_gain=cfg.min_gain)
        files = [out_dir / STUDY_FILE, out_dir / CHOSEN_PARAMS_FILE]
        tracker.log_result(summary, files + sorted((out_dir / PLOTS_DIR).glob("*.png")))
    return summary


def write_outputs(study: optuna.Study, out_dir: Path, settings: dict[str, Any], *,
                  min_gain: float = 0.0) -> dict[str, Any]:
    """Write chosen_params.json, study.json and plots for the study as it stands now
    (``chosen_params.json``: the chosen trial's, see :func:`chosen_trial`).

    Returns:
        The ``study.json`` content.
    """
    out_dir = Path(out_dir)
    summary = {"skipped": False, **settings, **study_summary(study, min_gain)}
    if summary["chosen_value"] is None:
        log.warning("%s: no trial completed; chosen_params.json is empty", study.study_name)
    write_json(out_dir / CHOSEN_PARAMS_FILE, summary["chosen_params"])
    plots = write_plots(study, out_dir / PLOTS_DIR)
    summary["plots"] = [p.name for p in plots]
    write_json(out_dir / STUDY_FILE, summary)
    return summary


def write_skipped(out_dir: Path, arch: str, reason: str) -> dict[str, Any]:
    """Record that ``arch`` was not tuned (the data lacks its modalities).

    ``chosen_params.json`` is written empty so the train stage's merge is a no-op.
    """
    out_dir = Path(out_dir)
    summary = {"skipped": True, "arch": arch, "reason": reason}
    write_json(out_dir / STUDY_FILE, summary)
    write_json(out_dir / CHOSEN_PARAMS_FILE, {})
    (out_dir / PLOTS_DIR).mkdir(parents=True, exist_ok=True)
    log.warning("%s skipped: %s", arch, reason)
    return summary

