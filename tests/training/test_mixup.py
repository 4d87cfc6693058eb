"""Mixup (``train.mixup_alpha``): the blend itself, its settings, and training with it."""

from __future__ import annotations

import pytest
import torch

from components.errors import ConfigError
from components.training.augment import mixup
from tests.training.helpers import (
    SYNTHETIC_CLASSES,
    quick_config,
    tiny_trainer,
)


def test_mixup_blends_each_sample_with_its_partner_by_the_drawn_weight() -> None:
    x = torch.randn(8, 2, 5, 5)
    blended, partner, own = mixup(x, torch.Generator().manual_seed(3), alpha=0.4)
    assert 0.5 <= own < 1.0
    assert sorted(partner.tolist()) == list(range(8))
    torch.testing.assert_close(blended, own * x + (1 - own) * x[partner])
    again, again_partner, again_own = mixup(x, torch.Generator().manual_seed(3), alpha=0.4)
    assert again_own == own and torch.equal(again_partner, partner)
    assert torch.equal(again, blended)
    weights = {mixup(x, torch.Generator().manual_seed(s), alpha=0.4)[2] for s in range(20)}
    assert len(weights) == 20 and min(weights) >= 0.5


def test_mixup_off_returns_the_batch_and_draws_nothing() -> None:
    x = torch.randn(4, 1, 3, 3)
    generator = torch.Generator().manual_seed(5)
    state = generator.get_state()
    same, partner, own = mixup(x, generator, alpha=0.0)
    assert same is x and own == 1.0 and partner.tolist() == [0, 1, 2, 3]
    assert torch.equal(generator.get_state(), state)


def test_a_negative_alpha_is_refused() -> None:
    with pytest.raises(ConfigError, match="mixup_alpha"):
        quick_config(mixup_alpha=-0.1)


def test_mixup_with_ec_stfl_is_refused_naming_the_per_architecture_setting() -> None:
    with pytest.raises(ConfigError, match=r"overrides\.<arch>\.mixup_alpha"):
        tiny_trainer(quick_config(mixup_alpha=0.2), ecstfl=True)


def test_training_with_mixup_learns_and_replays_the_same_run(synthetic_splits) -> None:
    train, val = synthetic_splits
    plain = tiny_trainer(quick_config(epochs=6)).fit(train, val)
    cfg = quick_config(epochs=6, mixup_alpha=0.4)
    mixed = tiny_trainer(cfg).fit(train, val)
    replay = tiny_trainer(cfg).fit(train, val)
    losses = [row["train_loss"] for row in mixed.history]
    assert losses == [row["train_loss"] for row in replay.history]
    assert losses != pytest.approx([row["train_loss"] for row in plain.history])
    # Blended labels are harder to fit than plain ones, yet the net still learns the task.
    assert losses[-1] > plain.history[-1]["train_loss"]
    assert max(row["val_accuracy"] for row in mixed.history) > 1.5 / len(SYNTHETIC_CLASSES)


def test_a_weight_near_one_trains_as_without_mixup(synthetic_splits) -> None:
    train, val = synthetic_splits
    # No mirroring: mixup's draws come from the augmentation's generator, so with random
    # flips on the two runs would flip different faces.
    plain = tiny_trainer(quick_config(epochs=2, mirror=False)).fit(train, val)
    # Beta(alpha, alpha) with a tiny alpha puts the weight at 0 or 1, folded to 1: the blend
    # and the second label's share vanish, and the same steps are taken.
    nearly = tiny_trainer(quick_config(epochs=2, mirror=False, mixup_alpha=1e-4)).fit(train, val)
    assert [r["train_loss"] for r in nearly.history] == pytest.approx(
        [r["train_loss"] for r in plain.history], rel=1e-4)
