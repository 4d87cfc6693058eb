"""The one training loop every torch model goes through.

:class:`Trainer` owns optimiser, schedule, augmentation, early stopping, checkpoints and
(optionally) DistributedDataParallel; models only supply ``forward``. Reproducibility is by
construction: each epoch reseeds the shuffling, augmentation and dropout generators from
``(seed, epoch, rank)``, so a run resumed from the checkpoint of epoch k replays epochs k+1..
exactly as an uninterrupted run would, with no dependence on how the process got there.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from components.errors import ConfigError, DataError, one_line
from components.isa import caps_allow_amx, caps_allow_bf16
from components.machine import CPUINFO, cpuinfo_field
from components.models.contract import logits_of, tta_views
from components.models.prior import log_class_prior, prior_offsets
from components.models.simple_fit import TrainFn, check_fit_settings
from components.training.augment import augment_batch, mixup
from components.training.averaging import WeightAverage
from components.training.budget import (
    REPLAN_WINDOW,
    BudgetShare,
    Deadline,
    EpochPlan,
    plan_epochs,
    probe_epoch_seconds,
    replan_epochs,
)
from components.training.checkpoint import (
    CHECKPOINT_NAME,
    atomic_torch_save,
    load_checkpoint,
    rng_state,
    set_rng_state,
)
from components.training.config import MONITORS, TrainConfig
from components.training.data import SplitData
from components.training.distributed import (
    DistContext,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    current_context,
)
from components.training.metrics import classification_report

log = logging.getLogger(__name__)

EpochCallback = Callable[[dict[str, Any]], None]


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` hands back."""

    model: nn.Module  # unwrapped; the best monitored weights when ``restore_best``
    history: list[dict[str, Any]]
    best_epoch: int
    best_score: float
    stopped_early: bool
    # Set when ``cfg.budget_minutes`` planned the run (see components.training.budget).
    plan: EpochPlan | None = None
    stopped_by_budget: bool = False
    # The epoch count the schedule ended up fitted to (a budget run re-plans the probe's
    # count after every epoch).
    epochs_planned: int = 0
    # This process's wall clock over the ``epochs_timed`` epochs it ran (a resumed run's
    # earlier epochs are not among them): its training steps, and its whole epochs
    # (validation and checkpoint included), for ``images_trained`` images (all ranks).
    epochs_timed: int = 0
    train_seconds: float = 0.0
    epoch_seconds: float = 0.0
    images_trained: int = 0
    epochs_run: int = field(init=False)

    def __post_init__(self) -> None:
        self.epochs_run = len(self.history)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch so model initialisation is reproducible."""
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def cpu_bf16_flags(cpuinfo: Path = CPUINFO) -> set[str]:
    """The CPU's bfloat16 instruction flags (``amx_bf16``, ``avx512_bf16``) from Linux
    ``/proc/cpuinfo`` (whole words of its first ``flags`` line); empty elsewhere or on a
    CPU without them."""
    flags = (cpuinfo_field("flags", cpuinfo) or "").split()
    return set(flags) & {"amx_bf16", "avx512_bf16"}


def native_bf16() -> bool:
    """Whether this process computes bfloat16 natively: the CPU has AMX or AVX512-BF16 and
    the instruction-set caps (:mod:`components.isa`) leave them to PyTorch. Elsewhere
    autocast emulates bf16, far slower than float32."""
    return bool(cpu_bf16_flags()) and caps_allow_bf16()


def cpu_vendor(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's ``vendor_id`` (``GenuineIntel``, ``AuthenticAMD``) from Linux
    ``/proc/cpuinfo``; empty elsewhere."""
    return cpuinfo_field("vendor_id", cpuinfo) or ""


def bf16_pays_off() -> bool:
    """Whether bf16 autocast trains faster than float32 on this CPU: on AMX tiles, or on
    AVX512-BF16 in an AMD CPU, where the caps leave them to PyTorch.

    The flags alone do not say it, the measurements do (``benchmarks/train_precision.py``,
    same-run ratios of ``baseline_cnn``): on a 2-core Intel Xeon with AVX512-BF16 and no AMX
    bf16 ran at 0.74x float32's speed at width 0.5 (``train_precision_avx512bf16.md``); on a
    2-core AMD EPYC with AVX512-BF16 at 1.55x at width 0.25, 1.49x at 0.375 and 1.91x at 0.5
    (``train_precision_amd_epyc*.md``); on a Xeon read as having AMX at 1.93x at width 0.25
    (``train_precision.md``, measured before the CPU flags were recorded)."""
    flags = cpu_bf16_flags()
    if "amx_bf16" in flags and caps_allow_amx():
        return True
    return "avx512_bf16" in flags and cpu_vendor() == "AuthenticAMD" and caps_allow_bf16()


def resolve_device(device: str, ctx: DistContext | None = None) -> torch.device:
    """The torch device ``train.device`` names on this machine.

    ``auto`` takes CUDA when torch sees a GPU, else the CPU. Under DistributedDataParallel
    each process takes the GPU of its local rank (``LOCAL_RANK``, set by torchrun).

    Raises:
        ConfigError: ``cuda`` asked for where torch sees no CUDA device.
    """
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(
            "train.device: 'cuda' asked for, but torch sees no CUDA device "
            f"(torch {torch.__version__}); use 'auto' to fall back to the CPU, or 'cpu'"
        )
    index = torch.cuda.current_device()
    if ctx is not None and ctx.enabled:
        index = int(os.environ.get("LOCAL_RANK", ctx.rank)) % torch.cuda.device_count()
    return torch.device("cuda", index)


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """``fp32`` or ``bf16``: ``auto`` picks bf16 only where it trains faster than float32
    (a CUDA GPU that supports it; a CPU with AMX the ISA caps leave to PyTorch, see
    :func:`bf16_pays_off`)."""
    if precision != "auto":
        return precision
    if torch.device(device).type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if bf16_pays_off() else "fp32"


def build_optimizer(cfg: TrainConfig, params: Any) -> torch.optim.Optimizer:
    """The optimiser named by ``cfg.optimizer`` with lr / weight decay / momentum."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ConfigError(f"train.optimizer: unknown optimizer {cfg.optimizer!r}")


def build_scheduler(
    cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int,
    *, epochs_done: int = 0,
) -> tuple[torch.optim.lr_scheduler.LRScheduler | None, bool]:
    """The learning-rate schedule and whether it steps per batch (True) or per epoch.

    ``step`` divides the rate by 1/gamma every ``step_size`` epochs (a third of the run by
    default, like the 30/45-of-60 schedule in methods.md 1.9); ``cosine`` anneals to 0 over
    the run; ``onecycle`` warms up then anneals per batch. "The run" is
    ``cfg.schedule_epochs`` when set (a tuning trial: a prefix of the final run's schedule).
    ``epochs_done`` > 0 builds the schedule already advanced past that many epochs (a budget
    run refitting its schedule mid-run to a new epoch count); the optimiser must have carried
    a schedule before (its groups hold the starting rates).
    """
    horizon = cfg.schedule_epochs or cfg.epochs
    per_batch = cfg.schedule == "onecycle"
    steps = max(1, steps_per_epoch)
    last = (epochs_done * (steps if per_batch else 1)) - 1 if epochs_done > 0 else -1
    if cfg.schedule == "none":
        return None, False
    if cfg.schedule == "step":
        step = cfg.step_size or max(1, horizon // 3)
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step, gamma=cfg.gamma,
                                               last_epoch=last), False
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=horizon,
                                                          last_epoch=last), False
    if cfg.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, epochs=horizon, steps_per_epoch=steps, last_epoch=last
        )
        return sched, True
    raise ConfigError(f"train.schedule: unknown schedule {cfg.schedule!r}")


class Trainer:
    """Trains one torch classifier on :class:`SplitData` and evaluates it.

    Args:
        model: returns logits from ``forward(x)``; with ``ecstfl`` it must also accept
            ``return_features=True`` and return ``(logits, features)``.
        cfg: trainer settings.
        classes: class names in label order (None: ``"0".."K-1"`` from the logits width).
        out_dir: where ``checkpoint.pt`` goes every epoch; None trains without checkpoints
            (used for the sub-models that estimators fit through :func:`make_train_fn`).
        ecstfl: add ``cfg.ecstfl_lambda`` x EC-STFL on the features and sample class-aware
            batches.
        ctx: distributed context; defaults to the initialised process group, if any.
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainConfig,
        classes: list[str] | None = None,
        *,
        out_dir: Path | None = None,
        ecstfl: bool = False,
        ctx: DistContext | None = None,
    ) -> None:
        self.cfg = cfg
        self.classes = list(classes) if classes is not None else None
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.ecstfl = ecstfl
        if ecstfl and cfg.mixup_alpha > 0:
            raise ConfigError(
                f"train.mixup_alpha ({cfg.mixup_alpha}) with EC-STFL: its loss is defined on "
                "the batch's unblended classes; set mixup per architecture instead "
                "(train.overrides.<arch>.mixup_alpha)"
            )
        self.ctx = ctx or current_context()
        self.model = model
        self.device = resolve_device(cfg.device, self.ctx)
        if self.device.type == "cuda":
            # Fixed batch shapes: let cuDNN time its kernels once and keep the fastest (GPU
            # runs are not byte-reproducible anyway; CPU runs are untouched).
            torch.backends.cudnn.benchmark = True
        self._memory_format: torch.memory_format | None = None
        self._bf16 = resolve_precision(cfg.precision, self.device) == "bf16"
        self.log_epochs = True  # the budget probe's throwaway fits say nothing
        self._max_epochs = cfg.epochs  # a budget plans at most the configured count
        self._ecstfl_fns: tuple[Callable, type] | None = None
        # train.prior_weight x log prior of the training labels, set when a fit starts
        self._prior: np.ndarray | None = None

    # ---- public API -------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        """``<out_dir>/checkpoint.pt``, or None when checkpoints are off."""
        return self.out_dir / CHECKPOINT_NAME if self.out_dir is not None else None

    def fit(
        self,
        train: SplitData,
        val: SplitData,
        *,
        resume: bool = False,
        on_epoch_end: EpochCallback | None = None,
    ) -> TrainResult:
        """Train with early stopping on ``cfg.monitor`` and return the result.

        ``resume`` continues from ``out_dir/checkpoint.pt`` when it exists (a finished run is
        not retrained). ``on_epoch_end`` receives each epoch's history row after the
        checkpoint is written (tests use it to simulate a crash).

        Raises:
            DataError: an empty split.
        """
        if len(train) == 0 or len(val) == 0:
            raise DataError(f"{train.name if len(train) == 0 else val.name}: split is empty")
        with self._on_device():
            return self._fit(train, val, resume=resume, on_epoch_end=on_epoch_end)

    def _fit(
        self,
        train: SplitData,
        val: SplitData,
        *,
        resume: bool,
        on_epoch_end: EpochCallback | None,
    ) -> TrainResult:
        self._prepare_data(train, val)
        self._check_crop(train)
        offsets = prior_offsets(self.cfg.prior_weight, self._log_prior(train).tolist())
        self._prior = None if offsets is None else np.asarray(offsets, dtype=np.float32)
        deadline, plan = None, None
        if self.cfg.budget_minutes is not None:
            deadline, plan = self._plan_budget(train, val, resume)
        cfg = self.cfg
        self._setup_memory_format(train)
        net = self._wrap(self.model)
        optimizer = build_optimizer(cfg, self.model.parameters())
        average = WeightAverage(self.model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        steps = len(self._epoch_batches(train, 0))
        scheduler, per_batch = build_scheduler(cfg, optimizer, steps)
        direction = MONITORS[cfg.monitor]
        state = {
            "epoch": -1,
            "history": [],
            "best_score": -math.inf if direction == "max" else math.inf,
            "best_epoch": -1,
            "best_state": None,
            "bad_epochs": 0,
            "stopped": False,
            "budget_stop": False,
        }
        if resume:
            state = self._restore(optimizer, scheduler, state, average)
        if deadline is not None:
            deadline.start_epochs()
        clock = {"train": 0.0, "epoch": 0.0, "images": 0, "epochs": 0}
        epoch = state["epoch"] + 1
        while epoch < cfg.epochs and not state["stopped"]:
            started = time.perf_counter()
            row = self._train_epoch(net, train, optimizer, scheduler, per_batch, epoch,
                                    average)
            clock["train"] += time.perf_counter() - started
            clock["images"] += len(train)
            with self._weights_of(average):  # the weights the run keeps are the ones scored
                val_report = self.evaluate(val)
                row.update({f"val_{k}": val_report[k]
                            for k in ("loss", "accuracy", "uar", "macro_f1")})
                score = row[cfg.monitor]
                improved = score > state["best_score"] if direction == "max" else score < state[
                    "best_score"]
                if improved:
                    state.update(best_score=score, best_epoch=epoch, bad_epochs=0)
                    state["best_state"] = copy.deepcopy(self.model.state_dict())
                else:
                    state["bad_epochs"] += 1
            if scheduler is not None and not per_batch:
                scheduler.step()
            state["history"].append(row)
            state["stopped"] = cfg.patience > 0 and state["bad_epochs"] >= cfg.patience
            if deadline is not None and not self._another_epoch_fits(deadline) \
                    and epoch + 1 < cfg.epochs:
                state["stopped"] = state["budget_stop"] = True
                if self.ctx.is_main:
                    log.info("budget: stopping after epoch %d of %d (%.0f s left)",
                             epoch + 1, cfg.epochs, deadline.remaining())
            elif deadline is not None and epoch + 1 < cfg.epochs:
                # refit the plan to the epochs measured so far (a finished schedule stays
                # finished: no epoch is added after its low end)
                scheduler = self._replan(deadline, epoch + 1, optimizer, scheduler, steps)
                if self.cfg.epochs <= epoch + 1 < cfg.epochs:  # no further epoch fits
                    state["stopped"] = state["budget_stop"] = True
                cfg = self.cfg
            state["epoch"] = epoch
            if self.ctx.is_main and self.log_epochs:
                log.info(
                    "epoch %d/%d train_loss %.4f %s %.4f%s", epoch + 1, cfg.epochs,
                    row["train_loss"], cfg.monitor, score, " (best)" if improved else "",
                )
            self._save(optimizer, scheduler, state, average)
            clock["epoch"] += time.perf_counter() - started
            clock["epochs"] += 1
            if on_epoch_end is not None:
                on_epoch_end(row)
            epoch += 1
        if cfg.restore_best and state["best_state"] is not None:
            self.model.load_state_dict(state["best_state"])
        elif average is not None:
            self.model.load_state_dict(average.weights())
        return TrainResult(
            model=self.model,
            history=state["history"],
            best_epoch=state["best_epoch"],
            best_score=float(state["best_score"]),
            stopped_early=bool(state["stopped"]),
            plan=plan,
            stopped_by_budget=bool(state.get("budget_stop", False)),
            epochs_planned=cfg.epochs,
            epochs_timed=int(clock["epochs"]),
            train_seconds=clock["train"],
            epoch_seconds=clock["epoch"],
            images_trained=int(clock["images"]),
        )

    def _another_epoch_fits(self, deadline: Deadline) -> bool:
        """The deadline's answer, the same on every rank (any rank out of time stops all:
        a rank starting an epoch the others skip would wait for them forever)."""
        fits = deadline.another_epoch_fits()
        if self.ctx.enabled:
            fits = all(all_gather_objects(self.ctx, fits))
        return fits

    def _replan(
        self,
        deadline: Deadline,
        done: int,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
        steps_per_epoch: int,
    ) -> torch.optim.lr_scheduler.LRScheduler | None:
        """Refit the epoch count (and the schedule) to the epochs measured so far.

        Every rank takes the slowest epoch and the least time left, so all plan the same
        count. A tuning trial's schedule (``schedule_epochs``) keeps its fixed horizon.
        Returns the schedule to continue with.
        """
        cfg = self.cfg
        epoch_s, remaining = deadline.typical_epoch(), deadline.remaining()
        if self.ctx.enabled:
            gathered = all_gather_objects(self.ctx, (epoch_s, remaining))
            epoch_s, remaining = max(g[0] for g in gathered), min(g[1] for g in gathered)
        epochs = replan_epochs(done, remaining, epoch_s, self._max_epochs)
        if epochs == cfg.epochs:
            return scheduler
        if self.ctx.is_main:
            log.info("budget: epochs take %.1f s (mean of the last %d); re-planned %d epochs "
                     "(was %d)", epoch_s, len(deadline.recorded[-REPLAN_WINDOW:]), epochs,
                     cfg.epochs)
        if cfg.schedule == "step":
            # The decay epochs stay where the first plan put them (a third of its horizon):
            # laid over a new horizon they would move, and the rate could jump back up.
            self.cfg = cfg.replace(epochs=epochs,
                                   step_size=cfg.step_size or max(
                                       1, (cfg.schedule_epochs or cfg.epochs) // 3))
            return scheduler
        self.cfg = cfg.replace(epochs=epochs)
        if scheduler is None or cfg.schedule_epochs:
            return scheduler
        return build_scheduler(self.cfg, optimizer, steps_per_epoch, epochs_done=done)[0]

    def _plan_budget(
        self, train: SplitData, val: SplitData, resume: bool
    ) -> tuple[Deadline, EpochPlan]:
        """Fit the epoch count to ``cfg.budget_minutes`` and start the deadline.

        A resumed run keeps the epoch count its checkpoint was planned with (so the schedule
        continues unchanged) and gets the whole budget again for what is left. Under
        DistributedDataParallel every rank probes one process's speed, takes its share of an
        epoch (1/world_size; the gradient sync is not timed); the slowest estimate and the
        least time left win, so all ranks plan the same count.
        """
        cfg = self.cfg
        budget_s = 60.0 * float(cfg.budget_minutes or 0.0)
        deadline = Deadline(budget_s)
        path = self.checkpoint_path
        if resume and path is not None and path.exists():
            epochs = int(load_checkpoint(path)["config"]["epochs"])
            plan = EpochPlan(epochs, float("nan"), float("nan"), 0.0)
        else:
            started = time.perf_counter()
            probe_cfg = cfg.replace(epochs=1, schedule="none", progress=False, patience=0,
                                    restore_best=False, budget_minutes=None)

            def fit_once(model: nn.Module, data: SplitData, held_out: SplitData) -> None:
                probe = Trainer(model, probe_cfg, ecstfl=self.ecstfl, ctx=DistContext())
                probe.log_epochs = False
                probe.fit(data, held_out)

            def score_once(model: nn.Module, data: SplitData) -> None:
                Trainer(model, probe_cfg, ctx=DistContext()).evaluate(data)

            epoch_s, rate = probe_epoch_seconds(
                self.model, train, val, cfg.batch_size, cfg.seed, fit_once, score_once)
            remaining = deadline.remaining()
            if self.ctx.enabled:  # each rank trains and scores 1/world_size of the data
                gathered = all_gather_objects(
                    self.ctx, (epoch_s / self.ctx.world_size, remaining))
                epoch_s = max(g[0] for g in gathered)
                remaining = min(g[1] for g in gathered)
                rate *= self.ctx.world_size
            epochs = plan_epochs(remaining, epoch_s, cfg.epochs)
            plan = EpochPlan(epochs, epoch_s, rate, time.perf_counter() - started)
            if self.ctx.is_main:
                log.info("budget %.1f min: an epoch takes ~%.1f s (%.0f images/s); planned %d "
                         "of at most %d epochs", budget_s / 60, epoch_s, rate, epochs, cfg.epochs)
        self.cfg = cfg.replace(epochs=epochs)
        return deadline, plan

    @torch.no_grad()
    def predict_logits(self, data: SplitData) -> np.ndarray:
        """Logits for every sample of ``data`` (all ranks get the full, ordered array)."""
        with self._on_device():
            return self._predict_logits(data)

    def _predict_logits(self, data: SplitData) -> np.ndarray:
        self._prepare_data(data)
        self._setup_memory_format(data)
        was_training = self.model.training
        self.model.eval()
        mine = np.arange(self.ctx.rank, len(data), self.ctx.world_size)
        size = self.cfg.eval_batch_size or 2 * self.cfg.batch_size
        outputs = []
        for start in range(0, len(mine), size):
            index = mine[start : start + size]
            # Contiguous shards read as slices (one memcpy) in one process.
            key = slice(int(index[0]), int(index[-1]) + 1) if not self.ctx.enabled else index
            x = self._to_input(data.batch(key))
            # The mirror alone: train.tta_shift's corner copies are for the final scoring
            # (in every epoch's validation they would cost five times the passes).
            views = tta_views(x, self.cfg.tta_mirror, 0)
            logits = self._forward(self.model, views[0])[0]
            for view in views[1:]:
                logits = logits + self._forward(self.model, view)[0]
            outputs.append((logits / len(views)).cpu())
        self.model.train(was_training)
        width = outputs[0].shape[1] if outputs else 0
        logits = torch.cat(outputs).numpy() if outputs else np.zeros((0, width), np.float32)
        if not self.ctx.enabled:
            return logits
        gathered = all_gather_objects(self.ctx, (mine, logits))
        full = np.zeros((len(data), max(g[1].shape[1] for g in gathered)), dtype=np.float32)
        for index, part in gathered:
            full[index] = part
        return full

    def evaluate(self, data: SplitData) -> dict[str, Any]:
        """Loss and :func:`classification_report` metrics of the current weights on ``data``,
        predicting by the model's decision rule (``train.prior_weight``'s offsets, once a fit
        has seen the training labels)."""
        logits = self.predict_logits(data)
        if self._prior is not None:
            logits = logits + self._prior
        loss = float(F.cross_entropy(torch.from_numpy(logits), data.labels()).item())
        classes = self.classes or [str(i) for i in range(logits.shape[1])]
        report = classification_report(data.y, logits.argmax(axis=1), classes)
        report["loss"] = loss
        return report

    # ---- one epoch --------------------------------------------------------------------
    def _train_epoch(
        self,
        net: nn.Module,
        data: SplitData,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
        per_batch: bool,
        epoch: int,
        average: WeightAverage | None = None,
    ) -> dict[str, Any]:
        cfg, ctx = self.cfg, self.ctx
        # Dropout and augmentation draw from generators reset per (seed, epoch, rank).
        epoch_seed = cfg.seed * 1_000_003 + 7919 * (epoch + 1) + 104_729 * ctx.rank
        torch.manual_seed(epoch_seed)
        aug = torch.Generator().manual_seed(epoch_seed + 1)
        criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        adjust = self._logit_offsets(data)
        if adjust is not None:
            adjust = adjust.to(self.device)
        net.train()
        labels = data.labels().to(self.device)
        lr = optimizer.param_groups[0]["lr"]
        # Sums stay on the device (float64, as Python floats would be): reading them every
        # step would make the CPU wait for a GPU at each batch.
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        seen = 0
        batches = self._epoch_batches(data, epoch)
        bar = tqdm(
            batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, unit="batch",
            disable=not (cfg.progress and ctx.is_main),
        )
        for index in bar:
            index = index.to(self.device, non_blocking=True)
            x = data.batch(index)
            y = labels[index]
            x = augment_batch(
                x, aug, mirror_p=0.5 if cfg.mirror else 0.0, max_shift=cfg.shift,
                max_degrees=cfg.rotate, max_scale=cfg.scale, erase_p=cfg.erase_p,
                crop=cfg.crop,
            )
            x, partner, own = mixup(x, aug, cfg.mixup_alpha)
            logits, features = self._forward(net, self._to_input(x), features=self.ecstfl)
            scores = logits + adjust if adjust is not None else logits
            loss = criterion(scores, y)
            if own < 1.0:
                loss = own * loss + (1.0 - own) * criterion(scores, y[partner])
            if self.ecstfl:
                loss = loss + cfg.ecstfl_lambda * self._ecstfl_loss(features, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update(self.model)
            if per_batch and scheduler is not None:
                scheduler.step()
            n = len(y)
            loss_sum += loss.detach().double() * n
            correct += (logits.detach().argmax(1) == y).sum()
            seen += n
        loss_sum, correct, seen = all_reduce_sum(ctx, [float(loss_sum), float(correct), seen])
        return {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": loss_sum / max(seen, 1),
            "train_accuracy": correct / max(seen, 1),
        }

    def _epoch_batches(self, data: SplitData, epoch: int) -> list[torch.Tensor]:
        """This rank's batches of sample indices for ``epoch`` (deterministic in seed, epoch).

        Plain training shuffles with :class:`DistributedSampler` semantics (seed + epoch,
        one shard per rank); ``batch_size`` is the global batch, split over ranks so one and
        N processes take the same number of optimiser steps. EC-STFL draws class-aware
        global batches and deals them out to ranks.
        """
        cfg, ctx = self.cfg, self.ctx
        per_rank = max(1, math.ceil(cfg.batch_size / ctx.world_size))
        if self.ecstfl:
            sampler_cls = self._ecstfl_parts()[1]
            sampler = sampler_cls(data.y, cfg.batch_size, cfg.classes_per_batch, cfg.seed)
            sampler.set_epoch(epoch)
            batches = [torch.as_tensor(list(b), dtype=torch.long) for b in sampler]
            # Whole batches go to ranks: EC-STFL is defined on a batch's class composition,
            # so splitting a class-aware batch would change the loss.
            count = len(batches) // ctx.world_size if ctx.enabled else len(batches)
            return batches[ctx.rank :: ctx.world_size][:count]
        sampler = DistributedSampler(
            range(len(data)), num_replicas=ctx.world_size, rank=ctx.rank,
            shuffle=True, seed=cfg.seed, drop_last=False,
        )
        sampler.set_epoch(epoch)
        order = torch.as_tensor(list(sampler), dtype=torch.long)
        batches = list(torch.split(order, per_rank))
        if len(batches) > 1 and len(batches[-1]) < 2:
            batches.pop()  # a 1-sample batch breaks BatchNorm in training mode
        return batches

    # ---- helpers ----------------------------------------------------------------------
    def _forward(
        self, net: nn.Module, x: torch.Tensor, *, features: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (and features) in float32; under ``precision: bf16`` the network itself
        runs in bfloat16 autocast, the loss and metrics stay in float32."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._bf16):
            if features:
                logits, feats = net(x, return_features=True)
                return logits.float(), feats.float()
            logits = logits_of(net(x))
        return logits.float(), None

    def _logit_offsets(self, data: SplitData) -> torch.Tensor | None:
        """``logit_adjust`` x log(class prior of the training labels), or None when off.

        Added to the logits inside the training loss only: the network then learns
        balanced-error scores, and inference uses its plain logits.
        """
        tau = self.cfg.logit_adjust
        if tau <= 0:
            return None
        return torch.as_tensor(tau * self._log_prior(data), dtype=torch.float32)

    def _log_prior(self, data: SplitData) -> np.ndarray:
        """Log class shares of ``data``'s labels, one per class the trainer knows."""
        return log_class_prior(data.y, len(self.classes) if self.classes else 0)

    def _ecstfl_parts(self) -> tuple[Callable, type]:
        if self._ecstfl_fns is None:
            from components.models import ClassAwareBatchSampler, ec_stfl_loss

            self._ecstfl_fns = (ec_stfl_loss, ClassAwareBatchSampler)
        return self._ecstfl_fns

    def _ecstfl_loss(self, features: torch.Tensor | None, labels: torch.Tensor) -> torch.Tensor:
        if features is None:
            raise ConfigError("EC-STFL needs a model whose forward returns (logits, features)")
        return self._ecstfl_parts()[0](features, labels)

    def _prepare_data(self, *splits: SplitData) -> None:
        for split in splits:
            if split.preload():
                split.hold_on(self.device)

    def _check_crop(self, data: SplitData) -> None:
        """Refuse ``train.crop`` before the first step where it cannot work: a window as
        large as the faces, or a net that cannot take both the crops it trains on and the
        whole faces it is scored on (a fixed-size classifier head)."""
        size = self.cfg.crop
        if size <= 0:
            return
        sample = data.batch(torch.arange(1))
        h, w = sample.shape[-2], sample.shape[-1]
        if size >= min(h, w):
            raise ConfigError(f"train.crop: {size} px must be smaller than the {h}x{w} faces")
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                for probe in (sample[..., :size, :size], sample):
                    self._forward(self.model, probe.to(self.device))
        except RuntimeError as err:
            raise ConfigError(
                f"train.crop: {type(self.model).__name__} cannot take {size}x{size} crops "
                f"and whole {h}x{w} faces alike ({one_line(str(err))}); use a net that pools "
                "globally (baseline_cnn) or train.crop: 0"
            ) from err
        finally:
            self.model.train(was_training)

    def _setup_memory_format(self, data: SplitData) -> None:
        """Switch 4-D conv nets to channels_last once (faster convolutions on CPU/GPU)."""
        if self._memory_format is not None:
            return
        if self.cfg.channels_last and not data.is_clip:
            self._memory_format = torch.channels_last
            self.model.to(memory_format=torch.channels_last)
        else:
            self._memory_format = torch.contiguous_format

    def _to_input(self, x: torch.Tensor) -> torch.Tensor:
        """A batch as the network takes it: on the training device, in its layout.

        A split held on the GPU (:meth:`SplitData.hold_on`) is sliced and augmented there
        (the augmentation's random draws still come from seeded CPU generators: the same
        draws on any device); otherwise the batch crosses once per step."""
        x = x.to(self.device, non_blocking=True)
        if self._memory_format is torch.channels_last:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    @contextlib.contextmanager
    def _on_device(self) -> Iterator[None]:
        """Hold the model on the training device, and hand it back where it was.

        Callers (the train stage, estimators, serving) always get a CPU model back, so
        saved weights and pickled estimators load on machines without a GPU."""
        params = next(self.model.parameters(), None)
        home = params.device if params is not None else torch.device("cpu")
        if home == self.device:
            yield
            return
        self.model.to(self.device)
        try:
            yield
        finally:
            self.model.to(home)

    @contextlib.contextmanager
    def _weights_of(self, average: WeightAverage | None) -> Iterator[None]:
        """Hold the averaged weights in the model for the block (validation, keeping the
        best), then put the trained ones back for the next step; no average: unchanged."""
        if average is None:
            yield
            return
        trained = copy.deepcopy(self.model.state_dict())
        self.model.load_state_dict(average.weights())
        try:
            yield
        finally:
            self.model.load_state_dict(trained)

    def _wrap(self, model: nn.Module) -> nn.Module:
        if not self.ctx.enabled:
            return model
        if self.device.type == "cuda":
            return DistributedDataParallel(model, device_ids=[self.device.index])
        return DistributedDataParallel(model)

    def _save(
        self,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
        state: dict[str, Any],
        average: WeightAverage | None = None,
    ) -> None:
        path = self.checkpoint_path
        if path is None:
            return
        if self.ctx.is_main:
            payload = {
                "model": self.model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "rng": rng_state(),
                "average": average.state_dict() if average is not None else None,
                "config": dataclasses.asdict(self.cfg),
                **state,
            }
            atomic_torch_save(payload, path)
        barrier(self.ctx)

    def _restore(
        self,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
        state: dict[str, Any],
        average: WeightAverage | None = None,
    ) -> dict[str, Any]:
        path = self.checkpoint_path
        if path is None or not path.exists():
            if path is not None:
                log.info("no checkpoint at %s: starting from scratch", path)
            return state
        ckpt = load_checkpoint(path)
        self.model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler") is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"])
        if average is not None:
            if ckpt.get("average") is None:
                raise ConfigError(f"{path}: written without train.ema_decay, so it holds no "
                                  "weight average to continue; rerun without --resume")
            average.load_state_dict(ckpt["average"])
        log.info("resumed from %s after epoch %d", path, ckpt["epoch"] + 1)
        return {key: ckpt.get(key, default) for key, default in state.items()}


def make_train_fn(
    cfg: TrainConfig, *, ecstfl: bool = False, total_rows: float | None = None,
    on_history: Callable[[list[dict[str, Any]]], None] | None = None,
) -> TrainFn:
    """A ``train_fn(model, x_train, y_train, x_val, y_val, part=...) -> model`` for the
    estimators.

    ``svm_fusion`` and ``hierarchical`` fit several torch sub-models; they call this so every
    sub-model gets the same optimiser, schedule, augmentation and early stopping as a plain
    model. Arrays are float32 NCHW/NTCHW and int64 labels. No checkpoints are written and the
    progress bar is off (sub-model fits are short and numerous). Returns the trained model
    (best validation weights).

    With ``cfg.budget_minutes`` the budget covers all fits together: each fit gets the
    share of the time left that its rows are of ``total_rows`` still to train (the
    estimator's ``training_rows``), and plans its own epochs within it.

    ``on_history`` receives each fit's epoch rows, every row tagged with the fit's ``part``;
    a fit without validation data keeps only its ``train_*`` and ``lr`` columns (its
    "validation" scores would be the training rows again, not a validation).
    """
    quiet = cfg.replace(progress=False)
    share = None
    if cfg.budget_minutes is not None:
        share = BudgetShare(60.0 * cfg.budget_minutes, total_rows or 1.0)

    def train_fn(
        model: nn.Module,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        *,
        part: str = "",
        settings: Mapping[str, Any] | None = None,
    ) -> nn.Module:
        train = SplitData.from_arrays(x_train, y_train, name="train_fn/train")
        changes = check_fit_settings(settings, f"train_fn({part or 'network'})")
        scale = changes.pop("epochs_scale", 1.0)
        fit_cfg = quiet.replace(**changes, **scaled_epochs(quiet, scale))
        validated = not (x_val is None or y_val is None or len(y_val) == 0)
        if not validated:
            # No held-out data (e.g. a group with no validation samples): train the full
            # schedule; the "validation" rows then only log fit on the training data.
            val = train
            fit_cfg = fit_cfg.replace(patience=0, restore_best=False)
        else:
            val = SplitData.from_arrays(x_val, y_val, name="train_fn/val")
        if share is not None:
            fit_cfg = fit_cfg.replace(
                budget_minutes=share.next_minutes(scale * len(y_train)))
        trainer = Trainer(model, fit_cfg, ecstfl=ecstfl, ctx=DistContext())
        result = trainer.fit(train, val)
        if on_history is not None:
            on_history([{"part": part, **{k: v for k, v in row.items()
                                          if validated or not k.startswith("val_")}}
                        for row in result.history])
        return result.model.eval()

    return train_fn


def scaled_epochs(cfg: TrainConfig, scale: float) -> dict[str, int]:
    """``epochs`` and ``schedule_epochs`` (when set) times ``scale``, rounded, at least 1:
    both scale together, so a run that trains a prefix of a longer schedule (a tuning trial)
    still trains the same prefix share of the scaled one."""
    if scale == 1.0:
        return {}
    out = {"epochs": max(1, round(cfg.epochs * scale))}
    if cfg.schedule_epochs:
        out["schedule_epochs"] = max(out["epochs"], round(cfg.schedule_epochs * scale))
    return out
