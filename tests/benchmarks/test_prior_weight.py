"""The prior-weight benchmark on a tiny trained run: every weight scored on every split, the
choice made on validation, the platform's own scoring agreeing at the chosen weight, the
results files written; bad input refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import prior_weight
from components.models import ModelSpec, create_classifier
from components.models.prior import log_class_prior
from components.training.run import train_run
from components.training.trainer import seed_everything
from tests.synthetic_task import make_synthetic_task
from tests.training.helpers import quick_config

CLASSES = ["anger", "happiness", "neutral", "surprise"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("prior_bench")
    make_synthetic_task(root / "preprocess", "image", size=16,
                        sizes={"train": 70, "val": 24, "test": 24})
    task = root / "preprocess" / "image"
    spec = ModelSpec("baseline_cnn", 4, 3, ("color",), "image", CLASSES,
                     model_kwargs={"width": 0.125}, tta_mirror=True)
    seed_everything(0)
    classifier = create_classifier(spec.arch, 4, 3, mirror=True, **spec.model_kwargs)
    train_run(classifier, spec, quick_config(epochs=3, tta_mirror=True, logit_adjust=0.5),
              task, root / "run")
    return root / "run", task


def test_every_weight_is_scored_and_chosen_on_validation(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    run, task = trained
    code = prior_weight.main(["--model", str(run), "--data", str(task), "--weights", "0.5",
                              "0", "2", "--name", "prior", "--out-dir", str(tmp_path)])
    assert code == 0
    payload = json.loads((tmp_path / "prior.json").read_text())
    result = payload["result"]
    assert [r["weight"] for r in result["rows"]] == [0.0, 0.5, 2.0]
    assert result["splits"] == ["val", "test"]
    best = max(result["rows"], key=lambda r: r["splits"]["val"]["accuracy"])
    assert result["chosen"] == best["weight"]
    # The prior is the training labels' (the model was saved without one).
    assert result["log_prior"] == pytest.approx(
        log_class_prior(np.load(task / "train" / "y.npy"), 4).tolist())
    # Weight 0 is the model as the train stage scored it (its mirror views).
    metrics = json.loads((run / "metrics.json").read_text())
    assert result["rows"][0]["splits"]["test"]["accuracy"] == pytest.approx(
        metrics["test_accuracy"])
    for split, check in result["platform_check"].items():
        assert check["differing_predictions"] == 0
        assert check["accuracy"] == pytest.approx(best["splits"][split]["accuracy"])
    md = (tmp_path / "prior.md").read_text()
    assert "(chosen)" in md and "## `test`" in md and payload["commit"]
    (tmp_path / "prior.md").write_text("stale")  # rebuilt from the json alone, unchanged
    assert prior_weight.main(["--model", "-", "--data", "-", "--name", "prior", "--out-dir",
                              str(tmp_path), "--markdown-only"]) == 0
    assert (tmp_path / "prior.md").read_text() == md


def test_bad_input_is_refused(trained: tuple[Path, Path], tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    _, task = trained
    with pytest.raises(SystemExit):
        prior_weight.main(["--model", "-", "--data", str(task), "--weights", "nan"])
    code = prior_weight.main(["--model", str(tmp_path), "--data", str(task),
                              "--out-dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "cannot load the model" in err
