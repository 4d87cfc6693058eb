"""The FER2013 benchmark driver runs a 200-row recipe through the real pipeline end to end.

A copy of the project (its tracked files, a fresh git repository, one photo under data/)
runs ``dvc exp run --temp -S recipe=fer2013 ...`` on a 200-row subsample of the real csv;
the driver then reads the tracked MLflow run and the registry, and writes the results files.
It reports one run per architecture: the newest one the experiment name tracked (a name run
again keeps its earlier runs in MLflow).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "benchmarks" / "fer2013_accuracy.py"
SHARED_CSV = REPO_ROOT.parent / "shared" / "datasets" / "fer2013" / "fer2013.csv.gz"
REDIRECTS = ("FEROPS_PROJECT_ROOT", "DVC_ROOT", "MLFLOW_TRACKING_URI", "OPTUNA_STORAGE")
SMALL = [
    "ingest.subsample=200", "train.epochs=2", "train.budget_minutes=0.3", "tune.n_trials=1",
    "tune.startup_trials=1", "tune.epochs=1", "registry.class_recall_floor=0.0",
    "validate.min_samples_per_class=0",
    # a seed ensemble of two (a key the recipe lacks: Hydra's append), so the members' path
    # runs through tune, train, the registry and the champion's photo too
    "+train.overrides.baseline_cnn.members=2",
]


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("fer2013_accuracy", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _project_copy(root: Path) -> Path:
    """The project's files (tracked and new, not ignored) in a fresh git repository whose
    data/ holds one grey photo, tracked by data.dvc."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
        check=True, capture_output=True, text=True).stdout.split("\n")
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    import cv2

    (root / "data").mkdir()
    face = np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)
    cv2.imwrite(str(root / "data" / "face.png"), face)
    _git(root, "init", "-q")
    _git(root, "config", "user.email", "ci@example.com")
    _git(root, "config", "user.name", "ci")
    subprocess.run([sys.executable, "-m", "dvc", "add", "-q", "data"], cwd=root, check=True)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "copy")
    return root


@pytest.mark.fer2013
@pytest.mark.skipif(not SHARED_CSV.is_file(),
                    reason=f"needs the shared FER2013 csv at {SHARED_CSV}")
def test_driver_runs_a_200_row_recipe_through_the_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in REDIRECTS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    project = _project_copy(tmp_path / "proj")
    bench = _load_benchmark()
    argv = ["--project", str(project), "--csv", str(SHARED_CSV), "--name", "smoke",
            "--results", str(tmp_path / "results")]
    for item in SMALL:
        argv += ["-S", item]
    assert bench.main(argv) == 0

    payload = json.loads((tmp_path / "results" / "smoke.json").read_text())
    assert payload["recipe"] == "fer2013"
    assert payload["machine"]["cpu_count"] >= 1 and "native_bf16" in payload["machine"]
    (row,) = payload["runs"]
    assert row["architecture"] == "baseline_cnn" and row["recipe"] == "fer2013"
    assert row["train_images_per_second"] > 0 and row["epochs_planned"] >= 1
    assert row["members"] == 2 and len(row["member_epochs"]) == 2
    assert row["epochs_run"] == sum(m["epochs_run"] for m in row["member_epochs"])
    test = row["splits"]["test"]
    for key in ("tta", "no_tta"):  # the recipe averages mirrors; both are reported
        assert 0.0 <= test[key]["accuracy"] <= 1.0
        assert len(test[key]["per_class_recall"]) == 7
    assert row["registry"]["model"] == "ferops-image"
    assert "champion" in row["registry"]["aliases"]
    report = (tmp_path / "results" / "smoke.md").read_text()
    assert "PrivateTest" in report and "an ensemble of 2 networks trained in turn" in report
    assert row["model"]["model.members"] == "2" and "model.width" in row["model"]
    assert "- network: baseline_cnn, width " in report and ", members 2" in report

    shown = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"],
                           cwd=project, check=True, capture_output=True, text=True).stdout
    assert '"recipe": "fer2013"' in shown.replace("'", '"') and "smoke" in shown
    # The --temp run left the workspace's params (the demo recipe) as they were.
    assert yaml.safe_load((project / "params.yaml").read_text())["recipe"] == "demo"
    _experiment_data_reads_back_from_the_cache(project, tmp_path / "exp", test["n"])


def _experiment_data_reads_back_from_the_cache(project: Path, into: Path, test_rows: int) -> None:
    """What the --temp run trained and scored on comes back out of DVC's cache by the
    experiment's name (what ``benchmarks/tta_views.py --exp`` scores), the workspace left
    without it. The wrong names and paths are ``tests/test_experiments.py``'s, on a toy
    project; here only the real pipeline's read-back is new."""
    from components.experiments import checkout_output

    assert not (project / "artifacts" / "preprocess").exists()
    task = checkout_output(project, "smoke", "artifacts/preprocess/image", into)
    assert task == into / "image"
    assert len(np.load(task / "test" / "y.npy")) == test_rows
    assert {"train", "val", "test"} <= {p.name for p in task.iterdir() if p.is_dir()}


def _tracked(run_id: str, arch: str) -> SimpleNamespace:
    return SimpleNamespace(info=SimpleNamespace(run_id=run_id),
                           data=SimpleNamespace(tags={"architecture": arch}))


def test_only_the_newest_run_of_each_architecture_is_reported() -> None:
    newest_first = [_tracked("c", "baseline_cnn"), _tracked("b", "partition_cnn"),
                    _tracked("a", "baseline_cnn")]
    kept = _load_benchmark().newest_per_architecture(newest_first)
    assert [r.info.run_id for r in kept] == ["c", "b"]


def test_the_results_file_names_the_test_time_views_the_run_used() -> None:
    views_label = _load_benchmark().views_label
    assert views_label({"train.tta_mirror": "True", "train.tta_shift": "0"}) == "mirror"
    assert views_label({"train.tta_mirror": "True", "train.tta_shift": "2"}) == "mirror + shift 2"
    assert views_label({"train.tta_mirror": "False"}) == "none"


def test_the_results_file_gives_each_members_epochs() -> None:
    epochs_text = _load_benchmark()._epochs_text
    plain = {"epochs_run": 51, "epochs_planned": 51, "best_epoch": 50}
    assert epochs_text(plain) == "51 epochs run of 51 planned, best epoch 50"
    ensemble = {"epochs_run": 50, "epochs_planned": 51, "best_epoch": None, "members": 2,
                "member_epochs": [{"epochs_run": 25, "best_epoch": 25},
                                  {"epochs_run": 25, "best_epoch": 24}]}
    assert epochs_text(ensemble) == (
        "an ensemble of 2 networks trained in turn, 50 epochs run of 51 planned in all "
        "(member 1: 25 epochs, best 25; member 2: 25 epochs, best 24); scored on the mean of "
        "their logits")


def test_the_results_file_names_the_network_that_ran() -> None:
    network_text = _load_benchmark().network_text
    row = {"architecture": "baseline_cnn",
           "model": {"model.arch": "baseline_cnn", "model.width": "0.375"}}
    assert network_text(row) == "baseline_cnn, width 0.375"
    row["model"]["model.members"] = "2"
    assert network_text(row) == "baseline_cnn, width 0.375, members 2"
    assert network_text({"architecture": "baseline_cnn"}) == "baseline_cnn"  # older files
    # Blocks sized one by one replace the width (which then stays 1.0 and means nothing).
    shaped = {"architecture": "baseline_cnn",
              "model": {"model.width": "1.0", "model.channels": "[32, 64, 160, 320]",
                        "model.block_convs": "[1, 2, 2, 2]"}}
    assert network_text(shaped) == (
        "baseline_cnn, channels [32, 64, 160, 320], block_convs [1, 2, 2, 2]")
    shaped["model"]["model.channels"] = "None"   # logged unset: the width stands
    assert network_text(shaped) == "baseline_cnn, width 1.0, block_convs [1, 2, 2, 2]"
