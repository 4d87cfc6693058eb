"""fusion_twostream's stream dropout: one stream zeroed for a share of training samples,
never both, never at evaluation."""

from __future__ import annotations

import pytest
import torch

from components.errors import ConfigError
from components.models.registry import create_model
from components.models.seed000 import drop_streams


def test_a_dropped_sample_keeps_exactly_one_stream_and_the_rate_holds():
    torch.manual_seed(0)
    first, second = torch.ones(20000, 3), torch.ones(20000, 3)
    a, b = drop_streams(first, second, 0.5)
    kept_a, kept_b = a[:, 0] > 0, b[:, 0] > 0
    assert bool((kept_a | kept_b).all())  # never both streams gone
    dropped = (~kept_a | ~kept_b).float().mean().item()
    assert dropped == pytest.approx(0.5, abs=0.02)
    assert (~kept_a).float().mean().item() == pytest.approx(0.25, abs=0.02)
    assert torch.equal(a[kept_a], first[kept_a])  # kept rows untouched (no rescaling)


def test_rate_one_drops_one_stream_of_every_sample_and_zero_none():
    torch.manual_seed(1)
    a, b = drop_streams(torch.ones(500, 2), torch.ones(500, 2), 1.0)
    assert bool(((a[:, 0] > 0) ^ (b[:, 0] > 0)).all())
    a, b = drop_streams(torch.ones(500, 2), torch.ones(500, 2), 0.0)
    assert bool((a > 0).all() and (b > 0).all())


def test_training_outputs_differ_evaluation_outputs_do_not():
    torch.manual_seed(0)
    plain = create_model("fusion_twostream", 4, 4, width=0.25, fc_width=16, stream_width=8)
    dropping = create_model("fusion_twostream", 4, 4, width=0.25, fc_width=16, stream_width=8,
                            stream_dropout=1.0)
    dropping.load_state_dict(plain.state_dict())
    x = torch.randn(6, 4, 32, 32)
    plain.eval(), dropping.eval()
    assert torch.equal(plain(x), dropping(x))
    plain.train(), dropping.train()
    for layer in (*plain.modules(), *dropping.modules()):
        if isinstance(layer, torch.nn.Dropout):
            layer.p = 0.0  # the streams' own dropout aside
    torch.manual_seed(3)
    assert not torch.allclose(plain(x), dropping(x))


def test_rate_outside_zero_one_is_refused():
    with pytest.raises(ConfigError, match=r"fusion_twostream: stream_dropout=1.5 must lie"):
        create_model("fusion_twostream", 4, 4, stream_dropout=1.5)
