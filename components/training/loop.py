"""The project's training loop as a classifier's ``fit`` receives it (:class:`FitLoop`).

A plain network trains whole through :class:`~components.training.trainer.Trainer`
(checkpoints, resume, the time budget, data-parallel ranks, per-epoch callbacks); the members
of a :class:`~components.models.ensemble.SeedEnsemble` train so, each from its own seed: one
after another with its share of the budget, or ``train.member_processes`` at a time in
processes of their own, each with its share of the CPU threads (two one-thread processes made
more images/s together than one two-thread process: ``member_processes.md``); an
estimator's sub-networks train through
:func:`~components.training.trainer.make_train_fn` with the same settings. Models receive
this object and never import the trainer, so no stage asks which family a model belongs to.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import pickle
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import torch
from torch import nn

from components.errors import ConfigError, FeropsError, one_line
from components.models import FitOutcome
from components.models.classifier import Dataset
from components.models.ensemble import SeedEnsemble
from components.models.simple_fit import TrainFn
from components.training.budget import BudgetShare
from components.training.config import TrainConfig
from components.training.data import SplitData
from components.training.distributed import DistContext, current_context
from components.training.trainer import (
    EpochCallback,
    Trainer,
    TrainResult,
    make_train_fn,
    resolve_device,
)

log = logging.getLogger("ferops.training")


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


def members_timings(results: list[TrainResult],
                    waves: list[list[int]] | None = None) -> dict[str, float]:
    """:func:`fit_timings` over an ensemble's member fits together: images/s over all their
    training steps, seconds per epoch over all their epochs, the first member's probe.

    ``waves`` (members trained at once, by index) counts each wave's training time once,
    as its slowest member's, so images/s is what the machine trained while they shared it.
    """
    timings: dict[str, float] = {}
    seconds = (sum(max(results[i].train_seconds for i in wave) for wave in waves)
               if waves else sum(r.train_seconds for r in results))
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
        augmentation and dropout draws; the members' initialisations already differ) and
        its checkpoint in ``out_dir/member<k>`` (a resumed run continues the members it
        stopped in and does not retrain finished ones). Members train in waves of
        ``cfg.member_processes`` (one by default: one after another, in this process); a
        wave of several trains at once, a process per member, each with an equal share of
        this process's threads. Under a budget each wave gets the time left divided by the
        waves still to train, so an ensemble fits the same minutes as one network. The
        members' epoch rows, tagged ``member <k>``, join ``sub_model_history``; the returned
        outcome has no epoch history of its own, so the run scores the ensemble on
        validation as it scores an estimator.

        Raises:
            ConfigError: members at once where they cannot run (a GPU, torchrun ranks, a
                per-epoch callback such as the tuner's pruning).
        """
        count = len(net.members)
        at_once = min(self.cfg.member_processes, count)
        if at_once > 1:
            self._check_members_at_once()
        waves = [list(range(first, min(first + at_once, count)))
                 for first in range(0, count, at_once)]
        share = (BudgetShare(60.0 * self.cfg.budget_minutes, len(waves))
                 if self.cfg.budget_minutes is not None else None)
        results: list[TrainResult] = []
        for wave in waves:
            minutes = share.next_minutes(1) if share is not None else None
            configs = [self._member_config(index, minutes, shows_progress=position == 0)
                       for position, index in enumerate(wave)]
            if len(wave) == 1:
                fitted = [self._fit_member(net.members[wave[0]], configs[0], wave[0], train,
                                           val, ecstfl=ecstfl)]
            else:
                fitted = self._fit_members_at_once(net, wave, configs, train, val,
                                                   ecstfl=ecstfl)
            for index, result in zip(wave, fitted, strict=True):
                net.members[index] = result.model
                self.sub_model_history.extend({"part": f"member {index + 1}", **row}
                                              for row in result.history)
                results.append(result)
        outcome = FitOutcome([], None, members_extra(results, self.cfg.monitor,
                                                          self.ctx.world_size),
                             members_timings(results, waves if at_once > 1 else None),
                             list(self.sub_model_history))
        return net.eval(), outcome

    def _member_config(self, index: int, minutes: float | None, *,
                       shows_progress: bool) -> TrainConfig:
        """Member ``index``'s (from 0) settings: its own seed, its wave's minutes; of a wave
        trained at once only the first member draws a progress bar."""
        cfg = self.cfg.replace(seed=self.cfg.seed + index,
                               progress=self.cfg.progress and shows_progress)
        return cfg.replace(budget_minutes=minutes) if minutes is not None else cfg

    def _member_dir(self, index: int) -> Path | None:
        return self.out_dir / f"member{index + 1}" if self.out_dir is not None else None

    def _fit_member(self, member: nn.Module, cfg: TrainConfig, index: int, train: Dataset,
                    val: Dataset, *, ecstfl: bool) -> TrainResult:
        """One member in this process (with the stage's per-epoch callback)."""
        trainer = Trainer(member, cfg, self.classes, out_dir=self._member_dir(index),
                          ecstfl=ecstfl, ctx=self.ctx)
        return trainer.fit(train, val, resume=self.resume, on_epoch_end=self.on_epoch_end)

    def _check_members_at_once(self) -> None:
        """Members at once share the CPU's cores: refuse the set-ups where they cannot."""
        where = None
        if self.ctx.enabled:
            where = "torchrun ranks already share the machine"
        elif resolve_device(self.cfg.device).type != "cpu":
            where = f"train.device {self.cfg.device!r} trains on a GPU, which one process uses best"
        elif self.on_epoch_end is not None:
            where = "a per-epoch callback (the tuner's pruning) runs in this process only"
        if where:
            raise ConfigError(f"train.member_processes: {self.cfg.member_processes} trains "
                              f"members at once on CPU cores, but {where}; set it to 1")

    def _fit_members_at_once(self, net: SeedEnsemble, wave: list[int],
                             configs: list[TrainConfig], train: Dataset, val: Dataset, *,
                             ecstfl: bool) -> list[TrainResult]:
        """The members of ``wave`` trained at once, each in a process of its own.

        The processes are spawned, not forked: a fork of a process that has run OpenMP
        threads hangs in its first parallel region. A split memory-mapped from the
        preprocess output travels as its file paths (:class:`SplitData` pickles so); each
        member sends back its :class:`TrainResult`. If one fails, the others are stopped
        (their checkpoints stay for ``--resume``) and its error is raised here.
        """
        threads = max(1, torch.get_num_threads() // len(wave))
        log.info("members %s at once, a process each with %d thread(s)",
                 ", ".join(str(i + 1) for i in wave), threads)
        spawn = multiprocessing.get_context("spawn")
        running: list[tuple[int, Any, Connection]] = []
        try:
            for index, cfg in zip(wave, configs, strict=True):
                receiver, sender = spawn.Pipe(duplex=False)
                process = spawn.Process(
                    target=train_member_process, name=f"member{index + 1}",
                    args=(sender, net.members[index], cfg, self.classes,
                          self._member_dir(index), ecstfl, self.resume, train, val, threads,
                          logging.getLogger().getEffectiveLevel()))
                process.start()
                sender.close()
                running.append((index, process, receiver))
            return [_member_result(index, process, receiver)
                    for index, process, receiver in running]
        finally:
            for _, process, _ in running:
                if process.is_alive():
                    process.terminate()
                process.join()


    def sub_model_fn(self, total_rows: float) -> TrainFn:
        """Sub-network training with these settings; a budget is shared over ``total_rows``.
        Each fit's epoch rows (tagged with its ``part``) join ``sub_model_history``."""
        return make_train_fn(self.cfg, total_rows=total_rows,
                             on_history=self.sub_model_history.extend)


def train_member_process(sender: Connection, member: nn.Module, cfg: TrainConfig,
                         classes: list[str] | None, out_dir: Path | None, ecstfl: bool,
                         resume: bool, train: SplitData, val: SplitData, threads: int,
                         log_level: int) -> None:
    """Body of one member's process (:meth:`TrainerLoop._fit_members_at_once`): train it
    with ``threads`` threads and send back ``("ok", TrainResult)`` or ``("error", exception,
    traceback text)``."""
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(threads)
    try:
        trainer = Trainer(member, cfg, classes, out_dir=out_dir, ecstfl=ecstfl,
                          ctx=DistContext())
        _send(sender, ("ok", trainer.fit(train, val, resume=resume)))
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent
        text = traceback.format_exc()
        try:
            _send(sender, ("error", exc, text))
        except Exception:  # noqa: BLE001 - an exception that does not pickle
            _send(sender, ("error", FeropsError(one_line(str(exc))), text))
    finally:
        sender.close()


def _send(sender: Connection, message: tuple[Any, ...]) -> None:
    """``message`` pickled by value: ``Connection.send`` would hand tensors over as shared
    memory whose file descriptors die with this process, which ends right after."""
    sender.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def _member_result(index: int, process: Any, receiver: Connection) -> TrainResult:
    """Member ``index``'s result from its process, or its failure raised here."""
    try:
        message = pickle.loads(receiver.recv_bytes())
    except EOFError:
        process.join()
        raise FeropsError(f"member {index + 1}: its training process ended without a result "
                          f"(exit code {process.exitcode}; out of memory?); rerun with "
                          "--resume to continue from its checkpoint") from None
    if message[0] == "ok":
        return message[1]
    _, exc, text = message
    exc.add_note(f"in member {index + 1}'s training process:\n{text}")
    raise exc
