"""EC-STFL equals the methods.md 5.2 reference and has correct gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from components.models.losses import ec_stfl_loss


def reference_ec_stfl(x: np.ndarray, y: np.ndarray, eps_sqrt=1e-8, eps_den=1e-6) -> float:
    """The NumPy computation printed in methods.md 5.2 (literal claim-3 form)."""
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1) + eps_sqrt)
    same = y[:, None] == y[None, :]
    cnt = same.sum(1)
    num = (d * same).sum(1) / cnt
    den = (d * ~same / cnt[None, :]).sum(1)
    return float((num / (den + eps_den)).sum())


def literal_double_sum(x: np.ndarray, y: np.ndarray, eps_sqrt=1e-8, eps_den=1e-6) -> float:
    """Claim 3 written as explicit loops, class-size of x_j in the denominator."""
    total = 0.0
    for i in range(len(x)):
        num = den = 0.0
        for j in range(len(x)):
            dist = np.sqrt(((x[i] - x[j]) ** 2).sum() + eps_sqrt)
            if y[j] == y[i]:
                num += dist / (y == y[i]).sum()
            else:
                den += dist / (y == y[j]).sum()
        total += num / (den + eps_den)
    return total


def test_matches_numpy_reference_and_the_loop_form():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 5))
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 0, 1])
    got = float(ec_stfl_loss(torch.tensor(x), torch.tensor(y)))
    assert got == pytest.approx(reference_ec_stfl(x, y), rel=1e-10)
    assert got == pytest.approx(literal_double_sum(x, y), rel=1e-10)


def test_gradcheck_in_float64():
    torch.manual_seed(0)
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    assert torch.autograd.gradcheck(lambda f: ec_stfl_loss(f, y), (x,))


def test_compact_separated_clusters_score_lower_than_mixed():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], 4)
    centres = np.eye(3)[y] * 10
    tight = torch.tensor(centres + rng.normal(scale=0.1, size=centres.shape))
    mixed = torch.tensor(rng.normal(size=centres.shape))
    labels = torch.tensor(y)
    assert ec_stfl_loss(tight, labels) < 0.1 * ec_stfl_loss(mixed, labels)


def test_single_class_batch_stays_finite():
    loss = ec_stfl_loss(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    assert torch.isfinite(loss)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="labels"):
        ec_stfl_loss(torch.randn(4, 3), torch.zeros(5, dtype=torch.long))
