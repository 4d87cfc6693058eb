"""The project's training loop as a classifier's ``fit`` receives it (:class:`FitLoop`).

A plain network trains whole through :class:`~components.training.trainer.Trainer`
(checkpoints, resume, the time budget, data-parallel ranks, per-epoch callbacks); the members
of a :class:`~components.models.ensemble.SeedEnsemble` train so one after another, each from
its own seed and with its share of the budget; an estimator's sub-networks train through
:func:`~components.training.trainer.make_train_fn` with the same settings. Models receive
this object and never import the trainer, so no stage asks which family a model belongs to.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from torch import nn

from components.models import FitOutcome
from components.models.classifier import Dataset
from components.models.ensemble import SeedEnsemble
from components.models.simple_fit import TrainFn
from components.training.budget import BudgetShare
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


def members_timings(results: list[TrainResult]) -> dict[str, float]:
    """:func:`fit_timings` over an ensemble's member fits together: images/s over all their
    training steps, seconds per epoch over all their epochs, the first member's probe."""
    timings: dict[str, float] = {}
    seconds = sum(r.train_seconds for r in results)
    epochs = sum(r.epochs_timed for r in results)
    if seconds > 0 and epochs:
        timings.update(train_images_per_second=sum(r.images_trained for r in results) / seconds,
                       epoch_seconds=sum(r.epoch_seconds for r in results) / epochs)
    probe = {k: v for k, v in fit_timings(results[0]).items() if k.startswith("probe_")}
    return {**timings, **probe}


def members_extra(results: list[TrainResult], monitor: str, world_size: int) -> dict[str, Any]:
    """What an ensemble's fit reports beside its validation scores: the member count, the
    epochs all members ran (and planned, under a budget), and each member's own figures."""
    extra: dict[str, Any] = {
        "members": len(results),
        "epochs_run": sum(r.epochs_run for r in results),
        "stopped_early": any(r.stopped_early for r in results),
        "world_size": world_size,
    }
    if all(r.plan is not None for r in results):
        extra.update(epochs_planned=sum(r.epochs_planned for r in results),
                     stopped_by_budget=any(r.stopped_by_budget for r in results))
    for index, result in enumerate(results, start=1):
        extra.update({f"member{index}_epochs_run": result.epochs_run,
                      f"member{index}_best_epoch": result.best_epoch + 1,
                      f"member{index}_best_{monitor}": result.best_score})
    return extra


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
        """Train ``net`` with early stopping / the budget; returns its best weights.

        An ensemble's members train one after another (:meth:`fit_members`)."""
        if isinstance(net, SeedEnsemble):
            return self.fit_members(net, train, val, ecstfl=ecstfl)
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

    def fit_members(self, net: SeedEnsemble, train: Dataset, val: Dataset, *,
                    ecstfl: bool) -> tuple[nn.Module, FitOutcome]:
        """Train each member of ``net`` as a network of its own, then return the ensemble.

        Member k (from 1) trains with seed ``cfg.seed + k - 1`` (its batch order,
        augmentation and dropout draws; the members' initialisations already differ), its
        checkpoint in ``out_dir/member<k>`` (a resumed run continues the member it stopped in
        and does not retrain finished ones), and under a budget the time left divided by the
        members still to train, so an ensemble fits the same minutes as one network. The
        members' epoch rows, tagged ``member <k>``, join ``sub_model_history``; the returned
        outcome has no epoch history of its own, so the run scores the ensemble on
        validation as it scores an estimator.
        """
        share = (BudgetShare(60.0 * self.cfg.budget_minutes, len(net.members))
                 if self.cfg.budget_minutes is not None else None)
        results: list[TrainResult] = []
        for index, member in enumerate(net.members, start=1):
            cfg = self.cfg.replace(seed=self.cfg.seed + index - 1)
            if share is not None:
                cfg = cfg.replace(budget_minutes=share.next_minutes(1))
            out_dir = self.out_dir / f"member{index}" if self.out_dir is not None else None
            trainer = Trainer(member, cfg, self.classes, out_dir=out_dir, ecstfl=ecstfl,
                              ctx=self.ctx)
            result = trainer.fit(train, val, resume=self.resume,
                                 on_epoch_end=self.on_epoch_end)
            net.members[index - 1] = result.model
            self.sub_model_history.extend({"part": f"member {index}", **row}
                                          for row in result.history)
            results.append(result)
        outcome = FitOutcome([], None, members_extra(results, self.cfg.monitor,
                                                          self.ctx.world_size),
                             members_timings(results), list(self.sub_model_history))
        return net.eval(), outcome

    def sub_model_fn(self, total_rows: float) -> TrainFn:
        """Sub-network training with these settings; a budget is shared over ``total_rows``.
        Each fit's epoch rows (tagged with its ``part``) join ``sub_model_history``."""
        return make_train_fn(self.cfg, total_rows=total_rows,
                             on_history=self.sub_model_history.extend)
