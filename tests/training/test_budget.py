"""The trainer's time budget: a probe plans the epochs, the schedule fits them, the deadline
stops a run that slows down and the best validated weights are kept."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from components.errors import ConfigError
from components.training.budget import BudgetShare, Deadline, plan_epochs, replan_epochs
from components.training.checkpoint import load_checkpoint
from components.training.data import SplitData, load_split
from components.training.loop import TrainerLoop
from components.training.trainer import Trainer, make_train_fn, seed_everything
from tests.synthetic_task import make_synthetic_task
from tests.training.helpers import TinyCNN, quick_config


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("budget")
    make_synthetic_task(root, "rgbd", size=16)
    return root / "image"


def _splits(task_dir: Path):
    return (load_split(task_dir, "train", ("color",)), load_split(task_dir, "val", ("color",)))


def _tiny() -> TinyCNN:
    seed_everything(0)
    return TinyCNN(4, 3)


def test_plan_fits_the_budget_with_a_margin_and_the_bounds() -> None:
    assert plan_epochs(budget_s=100.0, epoch_s=10.0, max_epochs=50) == 9  # 10 x 1.05 > 10
    assert plan_epochs(budget_s=100.0, epoch_s=1.0, max_epochs=50) == 50
    assert plan_epochs(budget_s=5.0, epoch_s=10.0, max_epochs=50) == 1


def test_replan_fits_the_epochs_left_to_the_measured_ones() -> None:
    # 2 epochs done, 100 s left: 10 s epochs leave room for 9 more (with the margin)
    assert replan_epochs(done=2, remaining_s=100.0, epoch_s=10.0, max_epochs=50) == 11
    assert replan_epochs(done=2, remaining_s=100.0, epoch_s=1.0, max_epochs=50) == 50
    assert replan_epochs(done=2, remaining_s=5.0, epoch_s=10.0, max_epochs=50) == 2  # ends
    assert replan_epochs(done=2, remaining_s=-1.0, epoch_s=10.0, max_epochs=50) == 2


def _replanned(schedule: str) -> tuple[Trainer, object, object]:
    """A 30-epoch budget run of ``schedule`` refitted after 5 epochs to a shorter count:
    the trainer, the schedule before and the one it continues with."""
    from components.training.trainer import build_optimizer, build_scheduler

    trainer = Trainer(_tiny(), quick_config(epochs=30, schedule=schedule, budget_minutes=1.0))
    optimizer = build_optimizer(trainer.cfg, trainer.model.parameters())
    before, _ = build_scheduler(trainer.cfg, optimizer, steps_per_epoch=4)
    clock = FakeClock()
    deadline = Deadline(60.0, clock=clock)
    for _ in range(5):
        clock.now += 5.0
        deadline.another_epoch_fits()
    after = trainer._replan(deadline, 5, optimizer, before, 4)  # 35 s left: 6 more epochs
    return trainer, before, after


def test_refit_keeps_a_step_schedules_decay_epochs() -> None:
    trainer, before, after = _replanned("step")
    assert trainer.cfg.epochs == 11
    assert after is before and trainer.cfg.step_size == 10  # decays at 10 and 20, as planned
    cosine, before, after = _replanned("cosine")
    assert cosine.cfg.epochs == 11 and after is not before  # refitted to the new count


def test_refit_never_extends_a_finished_schedule(
    task_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import components.training.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "plan_epochs", lambda *args: 1)  # the probe's plan
    train, val = _splits(task_dir)
    result = Trainer(_tiny(), quick_config(epochs=50, budget_minutes=1.0)).fit(train, val)
    # a minute had room for many more, but the one-epoch schedule had run to its end
    assert result.epochs_run == 1 and result.epochs_planned == 1


class SlowBatches(SplitData):
    """A training split whose batches take ``delay`` seconds to read: the trainer's epochs
    run slower than its probe (which trains on a copy of some rows) measured."""

    delay = 0.25

    def batch(self, index):  # noqa: ANN001, ANN201 - SplitData's signature
        time.sleep(self.delay)
        return super().batch(index)


def test_first_epoch_replans_a_probe_that_came_out_too_fast(task_dir: Path) -> None:
    train, val = _splits(task_dir)
    slow = SlowBatches(**{f.name: getattr(train, f.name)
                          for f in dataclasses.fields(train) if f.init and f.name[0] != "_"})
    cfg = quick_config(epochs=100_000, schedule="onecycle", budget_minutes=0.2, patience=0)
    trainer = Trainer(_tiny(), cfg)
    result = trainer.fit(slow, val)
    assert result.plan is not None
    assert result.epochs_planned < result.plan.epochs  # the slow epochs cut the probe's plan
    assert trainer.cfg.epochs == result.epochs_planned  # and the schedule was refitted to it
    assert result.epochs_run <= result.epochs_planned
    if not result.stopped_by_budget and result.epochs_planned >= 3:
        assert result.epochs_run == result.epochs_planned
        lrs = [row["lr"] for row in result.history]
        assert lrs[-1] < max(lrs) / 5  # the refitted one-cycle reached its low end


def test_every_fit_reports_its_measured_speed(task_dir: Path) -> None:
    train, val = _splits(task_dir)
    _, outcome = TrainerLoop(quick_config(epochs=2)).fit_network(_tiny(), train, val,
                                                                  ecstfl=False)
    assert outcome.timings["train_images_per_second"] > 0
    assert outcome.timings["epoch_seconds"] > 0
    assert "epochs_planned" not in outcome.extra  # no budget, no plan
    assert not set(outcome.timings) & set(outcome.extra)  # timings stay out of metrics.json
    _, budgeted = TrainerLoop(quick_config(epochs=50, budget_minutes=0.02)).fit_network(
        _tiny(), train, val, ecstfl=False)
    assert budgeted.timings["probe_images_per_second"] > 0
    assert budgeted.extra["epochs_planned_by_probe"] >= 1
    assert 1 <= budgeted.extra["epochs_planned"] <= 50


def test_deadline_estimates_the_next_epoch_from_the_latest() -> None:
    clock = FakeClock()
    deadline = Deadline(100.0, clock=clock)
    clock.now += 30.0
    assert deadline.another_epoch_fits()  # 30 s done, 30 more end at 60 of 100
    clock.now += 10.0
    assert deadline.another_epoch_fits()  # recovered: 10 more end at 50
    clock.now += 40.0
    assert not deadline.another_epoch_fits()  # slowed down: 80 s done, 40 more overrun
    assert deadline.typical_epoch() == pytest.approx((30.0 + 10.0 + 40.0) / 3)
    clock.now += 4.0
    deadline.another_epoch_fits()
    assert deadline.typical_epoch() == pytest.approx((10.0 + 40.0 + 4.0) / 3)  # the last 3


def test_deadline_times_epochs_from_their_start_not_the_probe() -> None:
    clock = FakeClock()
    deadline = Deadline(100.0, clock=clock)
    clock.now += 50.0  # the probe
    deadline.start_epochs()
    clock.now += 20.0
    assert deadline.another_epoch_fits() and deadline.latest == pytest.approx(20.0)


def test_budget_share_splits_time_by_rows() -> None:
    clock = FakeClock()
    share = BudgetShare(300.0, total_rows=300, clock=clock)
    assert share.next_minutes(100) == pytest.approx(100.0 / 60)
    clock.now += 100.0
    assert share.next_minutes(200) == pytest.approx(200.0 / 60)


def test_budget_plans_the_epochs_and_fits_the_schedule_to_them(task_dir: Path) -> None:
    train, val = _splits(task_dir)
    cfg = quick_config(epochs=100_000, schedule="onecycle", budget_minutes=0.03, patience=0)
    trainer = Trainer(_tiny(), cfg)
    result = trainer.fit(train, val)
    plan = result.plan
    assert plan is not None and 1 <= plan.epochs < 100_000  # 1.8 s cannot hold them all
    assert plan.train_images_per_second > 0 and plan.epoch_seconds > 0
    assert 1 <= result.epochs_planned < 100_000
    assert trainer.cfg.epochs == result.epochs_planned  # the schedule fits the last plan
    assert result.epochs_run <= result.epochs_planned
    if not result.stopped_by_budget and result.epochs_planned >= 3:  # one-cycle's low end
        assert result.epochs_run == result.epochs_planned
        lrs = [row["lr"] for row in result.history]
        assert lrs[-1] < max(lrs) / 5


def test_deadline_stops_a_slowed_run_and_keeps_the_best_weights(
    task_dir: Path, tmp_path: Path
) -> None:
    train, val = _splits(task_dir)
    cfg = quick_config(epochs=6, budget_minutes=0.1, patience=0)
    trainer = Trainer(_tiny(), cfg, out_dir=tmp_path)

    def machine_slows_down(row: dict) -> None:
        time.sleep(2.5)  # after the plan: each epoch now takes > 2.5 s of a 6 s budget

    result = trainer.fit(train, val, on_epoch_end=machine_slows_down)
    assert result.stopped_by_budget and result.epochs_run < trainer.cfg.epochs
    ckpt = load_checkpoint(trainer.checkpoint_path)
    for key, value in ckpt["best_state"].items():
        assert torch.equal(result.model.state_dict()[key], value)


def test_resume_keeps_the_planned_epoch_count(task_dir: Path, tmp_path: Path) -> None:
    train, val = _splits(task_dir)
    cfg = quick_config(epochs=30, budget_minutes=0.05, patience=0)
    first = Trainer(_tiny(), cfg, out_dir=tmp_path)
    first.fit(train, val)
    planned = first.cfg.epochs
    again = Trainer(_tiny(), cfg, out_dir=tmp_path)
    again.fit(train, val, resume=True)
    assert again.cfg.epochs == planned  # read from the checkpoint, not probed again


def test_estimator_fits_share_one_budget(task_dir: Path) -> None:
    train, val = _splits(task_dir)
    x, y = train.rows(slice(None)), train.y
    train_fn = make_train_fn(quick_config(epochs=20, budget_minutes=0.05, patience=0),
                             total_rows=2 * len(y))
    start = time.monotonic()
    for _ in range(2):
        train_fn(_tiny(), x, y, val.rows(slice(None)), val.y)
    assert time.monotonic() - start < 3.0 + 6.0  # the 3 s budget, plus probes and scoring


def test_logit_adjustment_and_bad_budget_values(task_dir: Path) -> None:
    train, val = _splits(task_dir)
    trainer = Trainer(_tiny(), quick_config(logit_adjust=1.0))
    offsets = trainer._logit_offsets(train)
    counts = np.bincount(train.y)
    assert offsets is not None and int(torch.argmax(offsets)) == int(np.argmax(counts))
    assert Trainer(_tiny(), quick_config())._logit_offsets(train) is None
    with pytest.raises(ConfigError, match="budget_minutes"):
        quick_config(budget_minutes=0)
    with pytest.raises(ConfigError, match="logit_adjust"):
        quick_config(logit_adjust=-1.0)
