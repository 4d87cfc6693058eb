"""The class prior in the decision rule: offsets from the training labels, applied by the one
network every consumer predicts through, saved with the model and refused where it cannot
apply."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from components.errors import ConfigError
from components.models import ModelSpec, TorchClassifier, create_classifier
from components.models.prior import PriorShift, log_class_prior, prior_offsets
from components.models.registry import load_trained
from components.training.config import TrainConfig, resolve_config
from tests.training.helpers import TinyCNN


def test_the_log_prior_is_the_smoothed_share_of_each_class() -> None:
    labels = np.array([0, 0, 0, 1, 2, 2])
    expected = np.log(np.array([4, 2, 3, 1]) / 10)  # (count + 1) / (6 + 4 classes)
    assert log_class_prior(labels, 4) == pytest.approx(expected)
    assert np.isfinite(log_class_prior(labels, 4)).all()  # the absent class too
    assert len(log_class_prior(np.array([0, 5]), 3)) == 6  # a label past the classes counts


def test_offsets_are_the_weighted_prior_and_zero_weight_means_none() -> None:
    assert prior_offsets(0.0, [-1.0, -2.0]) is None
    assert prior_offsets(0.5, [-1.0, -2.0]) == [-0.5, -1.0]
    with pytest.raises(ValueError, match="log prior"):
        prior_offsets(0.5, None)


def test_the_shift_adds_the_offsets_and_refuses_another_class_count() -> None:
    net = torch.nn.Linear(3, 2)
    shifted = PriorShift(net, [1.0, -1.0])
    x = torch.randn(5, 3)
    assert torch.allclose(shifted(x), net(x) + torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match="3 classes"):
        PriorShift(net, [0.0, 0.0, 0.0])(x)


def test_the_classifier_predicts_with_the_prior_with_and_without_views() -> None:
    torch.manual_seed(0)
    net = TinyCNN(4, 3).eval()
    offsets = [3.0, 0.0, -3.0, 0.0]
    x = np.random.default_rng(0).uniform(0, 1, (6, 3, 8, 8)).astype(np.float32)
    plain = TorchClassifier(net, mirror=True).predict_proba(x)
    shifted = TorchClassifier(net, mirror=True, prior=offsets)
    expected = torch.softmax(torch.log(torch.from_numpy(plain)) + torch.tensor(offsets), 1)
    assert shifted.predict_proba(x) == pytest.approx(expected.numpy(), abs=1e-5)
    single = shifted.without_tta()  # fewer views, the same rule
    assert single.prior == offsets and not single.mirror
    assert isinstance(single.network(), PriorShift)


def test_a_saved_network_is_rebuilt_with_its_prior(tmp_path: Path) -> None:
    spec = ModelSpec("baseline_cnn", 4, 3, ("color",), "image", ["a", "b", "c", "d"],
                     model_kwargs={"width": 0.125}, prior_weight=2.0,
                     log_prior=[-0.5, -1.0, -2.0, -3.0])
    classifier = create_classifier("baseline_cnn", 4, 3, prior=spec.prior(), width=0.125)
    classifier.save(tmp_path, spec)
    loaded_spec, loaded = load_trained(tmp_path)
    assert loaded_spec.prior() == [-1.0, -2.0, -4.0, -6.0]
    x = np.random.default_rng(1).uniform(0, 1, (4, 3, 16, 16)).astype(np.float32)
    assert loaded.predict_proba(x) == pytest.approx(classifier.predict_proba(x), abs=1e-6)


def test_an_estimator_refuses_a_prior_and_the_weight_must_be_finite() -> None:
    with pytest.raises(ConfigError, match="prior_weight"):
        create_classifier("svm_fusion", 4, 7, prior=[0.0, 0.0, 0.0, 0.0])
    # where tuning and training read their settings, before any study or fit starts
    with pytest.raises(ConfigError, match="hierarchical predicts through its own members"):
        resolve_config({"prior_weight": 0.5}, "hierarchical")
    assert resolve_config({"prior_weight": 0.5}, "baseline_cnn")[0].prior_weight == 0.5
    with pytest.raises(ConfigError, match="prior_weight"):
        TrainConfig(prior_weight=math.nan)
    assert TrainConfig(prior_weight=-0.5).prior_weight == -0.5  # post-hoc balancing
