"""Feature export for the EC-STFL claims: one vector per clip, and how it clusters by class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from components.evaluation import feature_clustering, write_views
from components.models import TorchClassifier
from components.models.baseline import BaselineCNN
from components.models.c3d import C3D


def test_torch_classifier_exports_the_feature_layer_of_nets_that_have_one() -> None:
    torch.manual_seed(0)
    net = C3D(4, width=0.125, fc_width=16, feature_layer="fc6")
    clips = np.random.default_rng(0).random((5, 4, 3, 32, 32), dtype=np.float32)
    features = TorchClassifier(net).feature_vectors(clips)
    with torch.no_grad():
        _, expected = net.eval()(torch.from_numpy(clips), return_features=True)
    assert features.shape == (5, 16)
    np.testing.assert_allclose(features, expected.numpy(), atol=1e-6)
    still = np.zeros((2, 1, 32, 32), dtype=np.float32)
    assert TorchClassifier(BaselineCNN(4, 1, width=0.25)).feature_vectors(still) is None


def test_feature_clustering_tells_tight_classes_from_shuffled_ones() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 30)
    centres = rng.normal(0, 10, size=(4, 8))
    tight = centres[labels] + rng.normal(0, 0.5, size=(120, 8))
    clustered = feature_clustering(tight, labels)
    assert clustered["feature_distance_ratio"] < 0.2 and clustered["feature_silhouette"] > 0.8
    mixed = feature_clustering(tight, rng.permutation(labels))
    assert mixed["feature_distance_ratio"] == pytest.approx(1.0, abs=0.1)
    assert mixed["feature_silhouette"] < 0.1
    assert np.isnan(feature_clustering(tight[:5], np.zeros(5, int))["feature_silhouette"])


def test_evaluate_views_write_one_feature_vector_per_test_clip(tmp_path: Path) -> None:
    labels = np.array([0, 1, 1, 0])
    test = {"accuracy": 0.5, "uar": 0.5, "labels": labels, "predictions": np.array([0, 1, 0, 1]),
            "classes": ["anger", "happiness"], "features": np.ones((4, 6), np.float32)}
    summary = write_views({"c3d_ecstfl": {"test": test}}, {"c3d_ecstfl": "video"},
                          {"c3d_ecstfl": {0: 0.5}}, tmp_path / "train", tmp_path / "out")
    exported = np.load(tmp_path / "out" / "features" / "c3d_ecstfl.npz")
    assert exported["features"].shape == (4, 6)
    assert list(exported["labels"]) == list(labels)
    assert list(exported["classes"]) == ["anger", "happiness"]
    assert summary == {"video_uar": 0.5, "video_acc": 0.5}
