"""The test-time views benchmark on a tiny trained run: every view set scored on every split,
the choice made on validation, the results files written; bad input refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import tta_views
from components.models import ModelSpec, create_classifier
from components.training.run import train_run
from components.training.trainer import seed_everything
from tests.synthetic_task import make_synthetic_task
from tests.training.helpers import quick_config

CLASSES = ["anger", "happiness", "neutral", "surprise"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tta")
    make_synthetic_task(root / "preprocess", "rgbd", size=16)
    task = root / "preprocess" / "image"
    spec = ModelSpec("baseline_cnn", 4, 3, ("color",), "image", CLASSES,
                     model_kwargs={"width": 0.125}, tta_mirror=True)
    seed_everything(0)
    classifier = create_classifier(spec.arch, 4, 3, mirror=True, **spec.model_kwargs)
    train_run(classifier, spec, quick_config(epochs=1, tta_mirror=True), task, root / "run")
    return root / "run", task


def test_every_view_set_is_scored_and_chosen_on_validation(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, task = trained
    code = tta_views.main(["--model", str(run), "--data", str(task), "--shifts", "1", "2",
                           "--name", "views", "--out-dir", str(tmp_path)])
    assert code == 0
    payload = json.loads((tmp_path / "views.json").read_text())
    result = payload["result"]
    assert [r["views"] for r in result["rows"]] == [
        "none (1 view)", "mirror (2 views)", "mirror + shift 1 (10 views)",
        "mirror + shift 2 (10 views)"]
    assert result["splits"] == ["val", "test"]
    best = max(result["rows"], key=lambda r: r["splits"]["val"]["accuracy"])
    assert result["chosen"] == best["views"]
    # The trained model's own views (mirror) score what the train stage scored.
    mirror_test = result["rows"][1]["splits"]["test"]["accuracy"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert mirror_test == pytest.approx(metrics["test_accuracy"])
    md = (tmp_path / "views.md").read_text()
    assert "(chosen)" in md and "## `test`" in md and payload["commit"]
    assert "wrote" in capsys.readouterr().out
    (tmp_path / "views.md").write_text("stale")  # rebuilt from the json alone, unchanged
    assert tta_views.main(["--model", "-", "--data", "-", "--name", "views", "--out-dir",
                           str(tmp_path), "--markdown-only"]) == 0
    assert (tmp_path / "views.md").read_text() == md


def test_a_folder_without_a_model_is_refused_in_one_line(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, task = trained
    code = tta_views.main(["--model", str(tmp_path), "--data", str(task),
                           "--out-dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "cannot load the model" in err


def test_an_unknown_experiment_is_refused_in_one_line(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--exp`` reads the data out of DVC's cache by the experiment's name; a name the
    project does not have says where the names are, and nothing is written."""
    run, _ = trained
    code = tta_views.main(["--model", str(run), "--data", "artifacts/preprocess/image",
                           "--exp", "no-such-experiment", "--out-dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "dvc exp list" in err
    assert not list(tmp_path.iterdir())


def test_the_results_file_names_the_experiment_whose_data_was_scored() -> None:
    assert tta_views.data_text({"data": "artifacts/preprocess/image"}) == (
        "`artifacts/preprocess/image`")
    assert tta_views.data_text({"data": "artifacts/preprocess/image", "experiment": "e1"}) == (
        "`artifacts/preprocess/image` of experiment `e1`")


def test_shift_views_reach_the_classifier_only_where_the_model_allows_them() -> None:
    """``train.tta_shift`` travels through ``create_classifier`` into the network that
    scores, serves and exports; a model whose needs forbid test-time views gets none."""
    from components.models import TorchClassifier, TrainingNeeds
    from components.models.classifier import ViewAverage
    from tests.training.helpers import TinyCNN

    net = create_classifier("baseline_cnn", 4, 3, mirror=True, shift=2, width=0.125).network()
    assert isinstance(net, ViewAverage) and (net.mirror, net.shift) == (True, 2)
    plain = TorchClassifier(TinyCNN(4, 3), TrainingNeeds(test_time_views=False), mirror=True,
                            shift=2)
    assert not isinstance(plain.network(), ViewAverage) and plain.shift == 0
