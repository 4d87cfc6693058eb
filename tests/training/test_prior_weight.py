"""``train.prior_weight`` through the train stage: validation during training, the test
scores and the saved model all predict by logits + w x log(training class prior)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from components.models.classifier import TORCH_FILE
from components.models.prior import PriorShift, log_class_prior
from components.models.registry import load_trained
from pipelines import train as train_stage_module
from tests.synthetic_task import make_synthetic_task

# 65 training faces of 4 classes: class 0 has 17, the rest 16, so a prior weighted this
# heavily outvotes any logit a one-epoch net produces and every prediction is class 0.
HEAVY = 1000.0


def _train(root: Path, prior_weight: float) -> Path:
    params = {"train": {
        "architectures": ["baseline_cnn"], "seed": 0, "epochs": 1, "batch_size": 16,
        "lr": 0.01, "progress": False, "tta_mirror": True, "prior_weight": prior_weight,
        "model_kwargs": {"baseline_cnn": {"width": 0.125}},
    }}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    out = root / f"train_{prior_weight:g}"
    code = train_stage_module.main([
        "--arch", "baseline_cnn", "--params", str(root / "params.yaml"), "--data",
        str(root / "preprocess"), "--out", str(out), "--tune-dir", str(root / "tune")])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def task_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prior")
    make_synthetic_task(root / "preprocess", "image", sizes={"train": 65, "val": 24,
                                                             "test": 24})
    return root


def test_a_heavy_prior_makes_every_prediction_the_majority_class(task_root: Path) -> None:
    run = _train(task_root, HEAVY)
    task = task_root / "preprocess" / "image"
    y_test, y_val = np.load(task / "test" / "y.npy"), np.load(task / "val" / "y.npy")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] == pytest.approx(np.mean(y_test == 0))
    assert metrics["test_notta_accuracy"] == pytest.approx(np.mean(y_test == 0))
    history = (run / "history.csv").read_text().splitlines()
    header, first = history[0].split(","), history[1].split(",")
    val_accuracy = float(first[header.index("val_accuracy")])
    assert val_accuracy == pytest.approx(np.mean(y_val == 0))  # validation used the rule too
    payload = torch.load(run / TORCH_FILE, weights_only=False)
    saved = payload["spec"]
    assert saved["prior_weight"] == HEAVY
    assert saved["log_prior"] == pytest.approx(
        log_class_prior(np.load(task / "train" / "y.npy"), 4).tolist())
    _, classifier = load_trained(run)  # what the registry, serving and ONNX export load
    assert isinstance(classifier.network(), PriorShift)
    x = np.load(task / "test" / "color.npy")[:8].astype(np.float32)
    assert (classifier.predict_proba(x).argmax(1) == 0).all()


def test_weight_zero_saves_the_plain_rule(task_root: Path) -> None:
    run = _train(task_root, 0.0)
    saved = torch.load(run / TORCH_FILE, weights_only=False)["spec"]
    assert saved["prior_weight"] == 0.0 and saved["log_prior"] is None
    _, classifier = load_trained(run)
    assert not isinstance(classifier.network(), PriorShift)
