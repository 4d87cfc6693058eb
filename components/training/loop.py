"""The project's training loop as a classifier's ``fit`` receives it (:class:`FitLoop`).

A plain network trains whole through :class:`~components.training.trainer.Trainer`
(checkpoints, resume, the time budget, data-parallel ranks, per-epoch callbacks); an
estimator's sub-networks train through :func:`~components.training.trainer.make_train_fn`
with the same settings. Models receive this object and never import the trainer, so no
stage asks which family a model belongs to.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from torch import nn

from components.models import FitOutcome
from components.models.classifier import Dataset
from components.models.simple_fit import TrainFn
from components.training.config import TrainConfig
from components.training.distributed import DistContext, current_context
from components.training.trainer import EpochCallback, Trainer, TrainResult, make_train_fn


def fit_timings(result: TrainResult) -> dict[str, float]:
    """The wall-clock figures of one network's fit, for the MLflow run (not ``metrics.json``:
    they depend on the machine). ``train_images_per_second`` counts the training steps of
    every epoch this process ran (augmentation included, validation not); a budget run adds
    what its probe estimated before the first epoch."""
    timings: dict[str, float] = {}
    if result.train_seconds > 0 and result.epochs_timed:
        timings.update(train_images_per_second=result.images_trained / result.train_seconds,
                       epoch_seconds=result.epoch_seconds / result.epochs_timed)
    plan = result.plan
    if plan is not None and math.isfinite(plan.epoch_seconds):
        timings.update(probe_epoch_seconds=plan.epoch_seconds,
                       probe_images_per_second=plan.train_images_per_second)
    return timings


class TrainerLoop:
    """:class:`~components.models.FitLoop` over the project trainer.

    Args:
        cfg: trainer settings.
        classes: class names in label order (reports and history).
        out_dir: where a network's ``checkpoint.pt`` goes; None: no checkpoints.
        resume: continue a network's fit from its checkpoint.
        on_epoch_end: receives each epoch's history row (the tuner's pruning hook).
        ctx: distributed context (defaults to the initialised process group, if any).
    """

    def __init__(self, cfg: TrainConfig, classes: list[str] | None = None, *,
                 out_dir: Path | None = None, resume: bool = False,
                 on_epoch_end: EpochCallback | None = None,
                 ctx: DistContext | None = None) -> None:
        self.cfg, self.classes, self.out_dir = cfg, classes, out_dir
        self.resume, self.on_epoch_end = resume, on_epoch_end
        self.ctx = ctx or current_context()
        self.sub_model_history: list[dict[str, Any]] = []  # every sub-network's epoch rows

    def fit_network(self, net: nn.Module, train: Dataset, val: Dataset, *,
                    ecstfl: bool) -> tuple[nn.Module, FitOutcome]:
        """Train ``net`` with early stopping / the budget; returns its best weights."""
        trainer = Trainer(net, self.cfg, self.classes, out_dir=self.out_dir, ecstfl=ecstfl,
                          ctx=self.ctx)
        result = trainer.fit(train, val, resume=self.resume, on_epoch_end=self.on_epoch_end)
        extra: dict[str, Any] = {
            "best_epoch": result.best_epoch + 1,
            f"best_{self.cfg.monitor}": result.best_score,
            "epochs_run": result.epochs_run,
            "stopped_early": result.stopped_early,
            "world_size": self.ctx.world_size,
        }
        if result.plan is not None:  # a budget run: how many epochs the machine's speed bought
            extra.update(epochs_planned=result.epochs_planned,
                         epochs_planned_by_probe=result.plan.epochs,
                         stopped_by_budget=result.stopped_by_budget)
        outcome = FitOutcome(result.history, float(result.best_score), extra,
                             fit_timings(result))
        return result.model.eval(), outcome

    def sub_model_fn(self, total_rows: float) -> TrainFn:
        """Sub-network training with these settings; a budget is shared over ``total_rows``.
        Each fit's epoch rows (tagged with its ``part``) join ``sub_model_history``."""
        return make_train_fn(self.cfg, total_rows=total_rows,
                             on_history=self.sub_model_history.extend)
