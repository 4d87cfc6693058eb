"""The one classifier interface: every architecture behind it, declared needs, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from components.models import (
    MODEL_INPUTS,
    Classifier,
    ModelSpec,
    TorchClassifier,
    available_models,
    create_classifier,
    load_trained,
    seeded_kwargs,
    training_needs,
)
from components.timings import split_timings


@pytest.mark.parametrize("name", available_models())
def test_every_architecture_is_a_classifier(name: str) -> None:
    in_channels = {"fusion_early": 7, "fusion_twostream": 4, "svm_fusion": 4}.get(name, 3)
    classifier = create_classifier(name, 4, in_channels)
    assert isinstance(classifier, Classifier) and name in MODEL_INPUTS
    # Single networks can be exported; the estimators say they cannot.
    assert (classifier.network() is None) == (name in {"svm_fusion", "hierarchical"})


def test_needs_are_declared_by_the_models_not_by_the_trainer() -> None:
    assert training_needs("c3d_ecstfl").ecstfl
    assert not training_needs("baseline_cnn").ecstfl
    for estimator in ("svm_fusion", "hierarchical"):
        needs = training_needs(estimator)
        assert not needs.distributed and not needs.test_time_views
    assert seeded_kwargs("svm_fusion", {}, 7) == {"seed": 7}
    assert seeded_kwargs("svm_fusion", {"seed": 1}, 7) == {"seed": 1}
    assert seeded_kwargs("baseline_cnn", {"width": 0.25}, 7) == {"width": 0.25}


def test_a_saved_network_is_rebuilt_with_its_mirror_setting(tmp_path: Path) -> None:
    spec = ModelSpec("baseline_cnn", 3, 1, ("color",), "image", ["a", "b", "c"],
                     model_kwargs={"width": 0.125}, tta_mirror=True)
    classifier = create_classifier("baseline_cnn", 3, 1, mirror=True, width=0.125)
    classifier.save(tmp_path, spec)
    loaded_spec, loaded = load_trained(tmp_path)
    assert loaded_spec == spec and isinstance(loaded, TorchClassifier) and loaded.mirror
    x = np.random.default_rng(0).random((4, 1, 24, 24), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict_proba(x), classifier.predict_proba(x), atol=1e-6)
    np.testing.assert_allclose(loaded.predict_proba(x), loaded.predict_proba(x[..., ::-1]),
                               atol=1e-6)  # mirrored averaging: a flipped face scores alike


def test_timings_are_split_out_of_a_report_at_any_depth() -> None:
    report = {"n": 3, "seconds": 1.5,
              "tasks": {"image": {"train": {"kept": 2, "seconds": 0.4, "faces_per_s": 5.0}}}}
    kept, timings = split_timings(report)
    assert kept == {"n": 3, "tasks": {"image": {"train": {"kept": 2}}}}
    assert timings == {"seconds": 1.5,
                       "tasks": {"image": {"train": {"seconds": 0.4, "faces_per_s": 5.0}}}}
