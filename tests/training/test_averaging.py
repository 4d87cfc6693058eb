"""Weight averaging (``train.ema_decay``): the average itself, and what the trainer keeps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from components.errors import ConfigError
from components.training.averaging import WeightAverage
from tests.training.helpers import quick_config, tiny_trainer


def test_average_follows_the_warmed_up_decay_and_copies_integer_buffers() -> None:
    net = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))
    weight = net[0].weight
    with torch.no_grad():
        weight.fill_(0.0)
    average = WeightAverage(net, decay=0.5)
    expected = 0.0
    for step, value in enumerate([1.0, 2.0, 4.0, 8.0, 3.0, 5.0, 7.0, 6.0, 9.0, 2.0]):
        with torch.no_grad():
            weight.fill_(value)
        net[1].num_batches_tracked.fill_(step + 1)
        keep = min(0.5, (1 + step) / (10 + step))  # 0.1, 0.18..., 0.5 from the 9th update
        expected = keep * expected + (1 - keep) * value
        average.update(net)
        assert average.weights()["0.weight"].item() == pytest.approx(expected)
        assert average.weights()["1.num_batches_tracked"].item() == step + 1
    assert average.updates == 10 and average.current_decay() == 0.5


def test_average_refuses_a_decay_outside_the_open_interval() -> None:
    for decay in (0.0, 1.0):
        with pytest.raises(ValueError, match="decay"):
            WeightAverage(nn.Linear(1, 1), decay)
    with pytest.raises(ConfigError, match="ema_decay"):
        quick_config(ema_decay=1.0)


def test_trainer_keeps_the_average_it_validated_and_trains_the_same_weights(
        synthetic_splits) -> None:
    train, val = synthetic_splits
    plain = tiny_trainer(quick_config(epochs=3)).fit(train, val)
    averaged_trainer = tiny_trainer(quick_config(epochs=3, ema_decay=0.9))
    averaged = averaged_trainer.fit(train, val)
    # The average is only looked at: the optimiser steps the same trained weights.
    assert [r["train_loss"] for r in averaged.history] == pytest.approx(
        [r["train_loss"] for r in plain.history], abs=1e-6)
    # What the run kept is what it scored: the best epoch's validated average.
    kept = averaged_trainer.evaluate(val)
    best_row = averaged.history[averaged.best_epoch]
    assert averaged.best_score == pytest.approx(best_row["val_uar"])
    assert kept["uar"] == pytest.approx(best_row["val_uar"])
    assert kept["accuracy"] == pytest.approx(best_row["val_accuracy"])
    differs = any(not torch.equal(a, b) for a, b in zip(
        plain.model.state_dict().values(), averaged.model.state_dict().values(), strict=True))
    assert differs


def test_without_restore_best_the_run_ends_on_the_average(synthetic_splits) -> None:
    train, val = synthetic_splits
    cfg = quick_config(epochs=2, restore_best=False)
    last = tiny_trainer(cfg).fit(train, val).model.state_dict()
    # A decay near zero makes the average the last step's weights: the same model back.
    near_zero = tiny_trainer(cfg.replace(ema_decay=1e-9)).fit(train, val)
    for key, value in last.items():
        torch.testing.assert_close(near_zero.model.state_dict()[key], value, atol=1e-6, rtol=0)
    slow = tiny_trainer(cfg.replace(ema_decay=0.99)).fit(train, val)
    assert not torch.allclose(slow.model.state_dict()["fc.weight"], last["fc.weight"])


def test_resuming_with_an_average_from_a_run_without_one_is_refused(synthetic_splits,
                                                                   tmp_path: Path) -> None:
    train, val = synthetic_splits
    tiny_trainer(quick_config(epochs=1), out_dir=tmp_path).fit(train, val)
    resumed = tiny_trainer(quick_config(epochs=2, ema_decay=0.9), out_dir=tmp_path)
    with pytest.raises(ConfigError, match="ema_decay"):
        resumed.fit(train, val, resume=True)
