"""The objective: train one architecture with a trial's settings, return its val score.

Trials go through the project's own trainer (same optimiser, schedule, augmentation as the
train stage) but write nothing to disk and never touch the test splits: the score is the
best validation value of ``tune.metric`` over ``tune.epochs`` epochs. Every model fits
through the same loop (:class:`~components.training.loop.TrainerLoop`), whose
``on_epoch_end`` hook reports each epoch to the pruner; a model without epochs (the
estimators) gives its single validation score.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from components.models import MODEL_INPUTS, Classifier, create_classifier, seeded_kwargs
from components.models.ensemble import MEMBERS_KEY
from components.training.config import TrainConfig, resolve_config
from components.training.data import SplitData, load_split, read_meta
from components.training.distributed import DistContext
from components.training.loop import TrainerLoop
from components.training.run import fit_classifier
from components.training.trainer import seed_everything
from components.tuning.config import TuneConfig
from components.tuning.space import ParamSpec, examples, suggest_all
from components.tuning.study import mark_owner
from components.tuning.tracking import StudyTracker

log = logging.getLogger(__name__)


def subsample_rows(n: int, share: float | None, seed: int) -> np.ndarray:
    """Sorted row indices of the training rows a trial uses: all of them, or a seeded
    ``share`` (at least 2 rows)."""
    if share is None or share >= 1.0:
        return np.arange(n)
    count = max(2, int(round(share * n)))
    return np.sort(np.random.default_rng(seed).permutation(n)[:count])


def trial_settings(
    train_values: dict[str, Any], arch: str, params: dict[str, Any], cfg: TuneConfig
) -> tuple[TrainConfig, dict[str, Any]]:
    """Trainer settings and model kwargs for one trial.

    The trial's values are layered over ``train.overrides[arch]`` and resolved by the train
    stage's own :func:`resolve_config`, so a value means the same in a trial as it will in
    ``chosen_params.json``. Tuning budget and metric replace the train ones; earlier tuned
    results are not merged (a study searches from the params, not from its last answer).

    Raises:
        ConfigError: a value the trainer or the section rejects.
    """
    values = copy.deepcopy(train_values)
    overrides = dict(values.get("overrides") or {})
    layer = dict(overrides.get(arch) or {})
    layer.update(params)
    # The final run's epochs with this trial's settings (an override may set them): the
    # trial runs the first tune.epochs of that run's schedule, not the schedule squeezed.
    final_epochs = resolve_config({**values, "overrides": {**overrides, arch: layer}}, arch,
                                  None)[0].epochs
    # Trials are budgeted in epochs (tune.epochs); the final run's time budget is not theirs.
    layer.update(epochs=cfg.epochs, schedule_epochs=max(cfg.epochs, final_epochs),
                 monitor=cfg.metric, progress=False, use_tuned=False, budget_minutes=None)
    overrides[arch] = layer
    values["overrides"] = overrides
    return resolve_config(values, arch, None)


@dataclass
class _Data:
    """A task's splits, loaded once per study and shared by every trial."""

    task_dir: Path
    classes: list[str]
    grey: bool
    in_channels: int
    train: SplitData
    val: SplitData


class Objective:
    """Callable for ``study.optimize``: one trial = one short training run.

    Args:
        arch: architecture name (``MODEL_INPUTS`` key).
        train_values: the ``train`` section of params.yaml (shared defaults and overrides).
        task_dir: the preprocess task folder the architecture trains on.
        cfg: the tuner settings.
        space: the parsed search space of ``arch``.
        tracker: MLflow logging (disabled tracker: no logging).
    """

    def __init__(
        self,
        arch: str,
        train_values: dict[str, Any],
        task_dir: Path,
        cfg: TuneConfig,
        space: dict[str, ParamSpec],
        tracker: StudyTracker,
    ) -> None:
        self.arch = arch
        self.train_values = train_values
        self.cfg = cfg
        self.space = space
        self.tracker = tracker
        self.inputs = MODEL_INPUTS[arch]
        _, extra = trial_settings(train_values, arch, examples(space), cfg)
        grey = bool(extra.get("grey", False))
        train = load_split(task_dir, "train", self.inputs, grey=grey)
        rows = subsample_rows(len(train), cfg.subsample, cfg.sampler_seed)
        if len(rows) < len(train):
            train = SplitData.from_arrays(train.rows(rows), train.y[rows],
                                          name=f"{train.name} (tuning rows)")
        self.data = _Data(task_dir, list(read_meta(task_dir)["classes"]), grey, train.in_channels,
                          train, load_split(task_dir, "val", self.inputs, grey=grey))

    def check(self) -> None:
        """Build the model once with legal values of every parameter, before any trial.

        A misspelt parameter name (a kwarg the architecture does not take) then fails the
        stage at once with the registry's message instead of failing every trial.

        Raises:
            ConfigError: a parameter the trainer or the architecture does not accept.
        """
        self._build(examples(self.space))

    def __call__(self, trial: optuna.Trial) -> float:
        """Run one trial; returns the best validation value of ``cfg.metric``.

        Raises:
            optuna.TrialPruned: the pruner stopped the trial after an epoch.
        """
        mark_owner(trial)
        params = suggest_all(trial, self.space)
        started = time.perf_counter()
        with self.tracker.trial(trial, params):
            settings, classifier = self._build(params)
            value = self._fit(trial, classifier, settings)
            self.tracker.log_value(value, time.perf_counter() - started)
        log.info("%s trial %d: %s=%.4f %s (%.1fs)", self.arch, trial.number, self.cfg.metric,
                 value, params, time.perf_counter() - started)
        return value

    # ---- one trial --------------------------------------------------------------------
    def _build(self, params: dict[str, Any]) -> tuple[TrainConfig, Classifier]:
        settings, extra = trial_settings(self.train_values, self.arch, params, self.cfg)
        extra.pop("grey", None)
        # A trial tunes one network: an ensemble's members share the chosen settings, and
        # training them all would cost each trial the members' count in time.
        extra.pop(MEMBERS_KEY, None)
        extra = seeded_kwargs(self.arch, extra, settings.seed)
        seed_everything(settings.seed)  # every trial starts from the same initialisation draw
        classifier = create_classifier(self.arch, len(self.data.classes), self.data.in_channels,
                                       **extra)
        return settings, classifier

    def _fit(self, trial: optuna.Trial, classifier: Classifier, settings: TrainConfig) -> float:
        """Fit one trial; every epoch goes to the pruner and the tracker as it ends."""
        logged: set[int] = set()

        def on_epoch_end(row: dict[str, Any]) -> None:
            step = int(row["epoch"])
            logged.add(step)
            trial.report(float(row[self.cfg.metric]), step)
            self.tracker.log_epoch(row, step)
            if trial.should_prune():
                log.info("%s trial %d pruned after epoch %d (%s=%.4f)", self.arch, trial.number,
                         step, self.cfg.metric, row[self.cfg.metric])
                raise optuna.TrialPruned(
                    f"{self.cfg.metric}={row[self.cfg.metric]:.4f} at epoch {step}"
                )

        loop = TrainerLoop(settings, self.data.classes, on_epoch_end=on_epoch_end,
                           ctx=DistContext())
        outcome = fit_classifier(classifier, self.data.train, self.data.val, loop,
                                 self.data.classes, self.cfg.metric)
        for row in outcome.history:  # a model without epochs: its one validation row
            if int(row["epoch"]) not in logged:
                self.tracker.log_epoch(row, int(row["epoch"]))
        self.tracker.log_timings(outcome.timings)
        return float(outcome.best_score)
