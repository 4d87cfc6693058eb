"""Training to a time budget: plan the epoch count from a timed probe, stop at the deadline.

A minutes budget is a property of the machine, so the trainer, not a script, owns it
(``train.budget_minutes``). Before the first epoch :func:`probe_epoch_seconds` times a
throwaway copy of the model through the real training step; :func:`plan_epochs` turns that
into the epoch count the learning-rate schedule is fitted to. The probe is short and epochs
drift (other work on the machine, memory), so after every epoch :func:`replan_epochs` refits
the count (and the trainer the schedule) to the epochs measured so far (the mean of the last
few, :meth:`Deadline.typical_epoch`): a plan that came out too long would leave the deadline to
cut off the schedule's low-learning-rate end, one too short would leave budget unused.
:class:`Deadline` stops the run after an epoch when the next one would overrun (a machine that
slowed down), and the trainer then restores the best validated weights as usual. Runs with a
budget depend on the machine's speed, so they are not byte-reproducible; the default (no
budget) trains ``train.epochs``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from torch import nn

from components.training.data import SplitData

PROBE_FRACTION = 0.05  # share of an epoch the probe trains, beyond its warm-up
PROBE_MIN_BATCHES = 12
PROBE_WARMUP_BATCHES = 2  # the first batches pay for allocation and kernel selection
# Epoch time varies with machine load; a run the deadline cuts short never reaches the
# low-learning-rate end of its schedule, so the plan leaves a margin.
PLAN_MARGIN = 1.05
# Epochs whose mean length the refit uses: one slow epoch does not cut the plan, a lasting
# slowdown does within a few epochs.
REPLAN_WINDOW = 3

FitOnce = Callable[[nn.Module, SplitData, SplitData], None]
ScoreOnce = Callable[[nn.Module, SplitData], None]


@dataclass(frozen=True)
class EpochPlan:
    """What the probe measured and the epoch count chosen from it."""

    epochs: int
    epoch_seconds: float
    train_images_per_second: float
    probe_seconds: float


def probe_epoch_seconds(
    model: nn.Module,
    train: SplitData,
    val: SplitData,
    batch_size: int,
    seed: int,
    fit_once: FitOnce,
    score_once: ScoreOnce,
) -> tuple[float, float]:
    """Seconds one epoch (training plus validation scoring) takes, and training images/s.

    A slice of the training set is trained (one epoch, through ``fit_once``, on deep copies
    of ``model``) and extrapolated; the validation pass is timed whole. The rate is the
    difference of a short and a long run made after a discarded warm-up, so per-run costs
    cancel and one-off costs (kernel selection, cached process-wide) are not counted.
    """
    steps = math.ceil(len(train) / batch_size)
    batches = min(steps, max(PROBE_MIN_BATCHES, math.ceil(PROBE_FRACTION * steps)))
    n = min(len(train), batches * batch_size)
    short = min(n // 2, PROBE_WARMUP_BATCHES * batch_size)
    rows = np.sort(np.random.default_rng(seed).permutation(len(train))[:n])
    x, y = train.rows(rows), train.y[rows]
    tiny = SplitData.from_arrays(x[:2], y[:2], name="probe/val")

    def timed(count: int) -> float:
        start = time.perf_counter()
        fit_once(copy.deepcopy(model), SplitData.from_arrays(x[:count], y[:count], "probe"),
                 tiny)
        return time.perf_counter() - start

    timed(max(short, 2))  # warm-up: process-wide kernel selection, discarded
    short_s = timed(short) if short >= 2 else 0.0
    counted = n - (short if short >= 2 else 0)
    per_sample = max(timed(n) - short_s, 1e-6) / max(counted, 1)
    start = time.perf_counter()
    score_once(copy.deepcopy(model), val)
    val_s = time.perf_counter() - start
    return per_sample * len(train) + val_s, 1.0 / per_sample


def plan_epochs(budget_s: float, epoch_s: float, max_epochs: int) -> int:
    """Epochs that fit ``budget_s`` with the planning margin: at least 1, at most
    ``max_epochs``."""
    return max(1, replan_epochs(0, budget_s, epoch_s, max_epochs))


def replan_epochs(done: int, remaining_s: float, epoch_s: float, max_epochs: int) -> int:
    """The run's epoch count once ``done`` epochs of ``epoch_s`` measured seconds have run:
    those plus the ones that fit ``remaining_s`` with the planning margin, at most
    ``max_epochs`` (never fewer than ``done``: a count at ``done`` ends the run)."""
    more = int(max(remaining_s, 0.0) // (max(epoch_s, 1e-9) * PLAN_MARGIN))
    return max(done, min(max_epochs, done + more))


class Deadline:
    """Says, after each epoch, whether another one would run past the deadline.

    The estimate of the next epoch is the one that just ended: a machine that slowed down
    stops the run in time, and one passing burst of other work does not end a run that has
    recovered.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.end = clock() + seconds
        self.last = clock()
        self.latest = 0.0  # seconds of the epoch recorded last
        self.recorded: list[float] = []  # every epoch's seconds, in order

    def remaining(self) -> float:
        """Seconds left before the deadline (negative past it)."""
        return self.end - self.clock()

    def start_epochs(self) -> None:
        """Start timing epochs now (after the probe, whose time is not an epoch's)."""
        self.last = self.clock()

    def another_epoch_fits(self) -> bool:
        """Record the epoch that just ended; True when one more of that length fits."""
        now = self.clock()
        self.latest, self.last = now - self.last, now
        self.recorded.append(self.latest)
        return now + self.latest <= self.end

    def typical_epoch(self) -> float:
        """Mean seconds of the last :data:`REPLAN_WINDOW` epochs recorded (0 before any)."""
        recent = self.recorded[-REPLAN_WINDOW:]
        return sum(recent) / len(recent) if recent else 0.0


class BudgetShare:
    """Splits one deadline across several consecutive fits in proportion to their work.

    Estimators fit several sub-models one after another (out-of-fold nets, group nets);
    each fit gets the share of the time left that its training rows are of the rows still
    to train, from ``total_rows`` (the estimator's estimate of all its fits together).
    """

    def __init__(self, seconds: float, total_rows: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.end = clock() + seconds
        self.rows_left = max(float(total_rows), 1.0)

    def next_minutes(self, rows: int) -> float:
        """Minutes granted to a fit over ``rows`` training rows (at least a second)."""
        share = min(1.0, rows / self.rows_left)
        self.rows_left = max(1.0, self.rows_left - rows)
        return max(1.0, (self.end - self.clock()) * share) / 60.0
