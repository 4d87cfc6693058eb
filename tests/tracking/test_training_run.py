"""The train stage tracks every run in MLflow: params, lineage, curves, scores, plots, model."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml
from mlflow import MlflowClient

from components.data.manifest import manifest_digest, read_manifest
from components.errors import DataError
from components.models import load_trained
from components.tracking.store import run_record_path
from components.training.data import load_split
from tests.conftest import REPO_ROOT
from tests.tracking.conftest import ARCHS, DVC_MD5, Study, free_port, make_workspace, tracking_env

# The colour-only net serves 2-D photos, the SVM fusion reads depth: one experiment per task.
TASKS: dict[str, str] = {"baseline_cnn": "image", "svm_fusion": "rgbd"}


def _run(study: Study, arch: str) -> mlflow.entities.Run:
    record = study.workspace.run_record(arch)
    return MlflowClient(study.uri).get_run(record["run_id"])


def test_each_training_run_is_one_finished_run_in_the_task_experiment(study: Study) -> None:
    client = MlflowClient(study.uri)
    assert set(TASKS) == set(ARCHS)
    for arch in ARCHS:
        experiment = client.get_experiment_by_name(f"ferops/{TASKS[arch]}/synthetic")
        assert experiment is not None
        assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
        runs = client.search_runs([experiment.experiment_id])
        assert [r.info.run_name for r in runs] == [f"{arch}-seed0"]
        assert runs[0].info.status == "FINISHED"
        record = study.workspace.run_record(arch)
        assert record["model_uri"] == f"runs:/{record['run_id']}/model"
        assert record["experiment_id"] == experiment.experiment_id


@pytest.mark.parametrize("arch", ARCHS)
def test_run_holds_params_tags_and_data_lineage(study: Study, arch: str) -> None:
    run = _run(study, arch)
    params, tags = run.data.params, run.data.tags
    assert params["train.lr"] == "0.01" and params["train.seed"] == "0"
    assert params["train.epochs"] == ("1" if arch == "svm_fusion" else "2")  # override applied
    assert params["model.arch"] == arch and params["model.num_classes"] == "4"
    assert params["preprocess.size"] == "16" and params["preprocess.frames.count"] == "4"
    assert params["augment.seed"] == "3"
    assert params["data.dvc_md5"] == DVC_MD5 and tags["data.dvc_md5"] == DVC_MD5
    assert "train.overrides" not in params  # study-wide settings stay out of the run
    assert tags["architecture"] == arch and tags["task"] == TASKS[arch]
    assert tags["dataset"] == "synthetic" and tags["seed"] == "0"
    description = tags["mlflow.note.content"]  # the UI's Description box
    assert description.startswith(f"{arch} trained from scratch on synthetic")
    assert "lr" in description
    if (REPO_ROOT / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}", tags["git_commit"])
        assert tags["mlflow.source.git.commit"] == tags["git_commit"]

    digest = manifest_digest(read_manifest(study.workspace.manifest))
    assert tags["data.manifest_digest"] == digest
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.digest == digest[:36]
    assert dataset_input.dataset.name == f"synthetic/{TASKS[arch]}"
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "training"
    assert "manifest.parquet" in dataset_input.dataset.source


def test_epoch_curves_have_steps_and_test_scores_match_metrics_json(study: Study) -> None:
    ws = study.workspace
    client = MlflowClient(study.uri)
    run = _run(study, "baseline_cnn")
    with (ws.out("baseline_cnn") / "history.csv").open() as handle:
        history = list(csv.DictReader(handle))
    assert len(history) == 2
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_uar"):
        points = client.get_metric_history(run.info.run_id, key)
        assert [p.step for p in points] == [1, 2]
        assert [p.value for p in points] == pytest.approx([float(r[key]) for r in history])
    written = json.loads((ws.out("baseline_cnn") / "metrics.json").read_text())
    for key in ("test_uar", "test_accuracy", "test_occ25_uar", "best_epoch"):
        assert run.data.metrics[key] == pytest.approx(written[key])
    # the machine's speed is on the run, never in the stage's cached metrics
    assert run.data.metrics["train_images_per_second"] > 0
    assert run.data.metrics["epoch_seconds"] > 0
    assert not {"train_images_per_second", "epoch_seconds"} & set(written)
    assert any(key.startswith("system/") for key in run.data.metrics)  # CPU / memory sampled


def test_an_estimators_networks_have_their_own_curves_in_the_run(study: Study) -> None:
    """svm_fusion's networks: each one's epochs under its own key prefix, step = epoch."""
    client = MlflowClient(study.uri)
    run_id = _run(study, "svm_fusion").info.run_id
    with (study.workspace.out("svm_fusion") / "sub_models.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["part"] == "nn3_color"]
    points = client.get_metric_history(run_id, "nn3_color/val_uar")
    assert [p.step for p in points] == [int(r["epoch"]) for r in rows]
    assert [p.value for p in points] == pytest.approx([float(r["val_uar"]) for r in rows])
    assert client.get_metric_history(run_id, "nn2_depth_fold_1/train_loss")
    assert not client.get_metric_history(run_id, "nn2_depth_fold_1/val_uar")  # no val data


@pytest.mark.parametrize("arch", ARCHS)
def test_plots_reports_and_validation_summary_are_artifacts(
    study: Study, arch: str, tmp_path: Path
) -> None:
    run_id = _run(study, arch).info.run_id
    client = MlflowClient(study.uri)
    plots = {Path(a.path).name for a in client.list_artifacts(run_id)}
    assert {"confusion_test.png", "per_class_recall_test.png", "learning_curves.png",
            "confusion_test_occ25.png"} <= plots
    local = Path(client.download_artifacts(run_id, "confusion_test.png", str(tmp_path)))
    assert local.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    reports = {Path(a.path).name for a in client.list_artifacts(run_id, "reports")}
    assert {"metrics.json", "per_class.json", "history.csv"} <= reports
    if arch == "svm_fusion":  # an estimator: every network it trained, table and plot
        assert "sub_models.csv" in reports and "sub_model_curves.png" in plots
    summary = Path(client.download_artifacts(run_id, "validation/summary.md", str(tmp_path)))
    assert summary.read_text().startswith("# Validation")


def test_logged_torch_model_loads_by_uri_and_matches_the_trained_model(study_store: Study) -> None:
    ws = study_store.workspace
    record = ws.run_record("baseline_cnn")
    spec, classifier = load_trained(ws.out("baseline_cnn"))
    assert record["flavor"] == "pytorch"
    test = load_split(ws.task_dir, "test", spec.inputs)
    batch = np.ascontiguousarray(test.rows(slice(0, 5)))  # 5: not the example's batch size
    with torch.no_grad():
        expected = classifier.network()(torch.from_numpy(batch)).numpy()
    loaded = mlflow.pyfunc.load_model(record["model_uri"])
    np.testing.assert_allclose(loaded.predict(batch), expected, rtol=1e-4, atol=1e-5)
    assert loaded.predict(batch[:1]).shape == (1, 4)  # single images work too
    assert loaded.metadata.get_input_schema().inputs[0].shape == (-1, 3, 16, 16)


def test_logged_estimator_loads_by_uri_and_returns_its_probabilities(study_store: Study) -> None:
    ws = study_store.workspace
    record = ws.run_record("svm_fusion")
    assert record["flavor"] == "pyfunc"
    spec, estimator = load_trained(ws.out("svm_fusion"))
    assert estimator.network() is None
    stacked = load_split(ws.task_dir, "test", spec.inputs).rows(slice(0, 5))
    expected = estimator.predict_proba(stacked)
    loaded = mlflow.pyfunc.load_model(record["model_uri"])
    predicted = np.asarray(loaded.predict(stacked.astype(np.float32)))
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predicted.sum(axis=1), 1.0, atol=1e-6)


def test_estimator_input_with_wrong_channels_is_refused_with_a_clear_message(
    study_store: Study,
) -> None:
    _, estimator = load_trained(study_store.workspace.out("svm_fusion"))
    with pytest.raises(DataError, match="1 depth \\+ 3 colour channels"):
        estimator.predict_proba(np.zeros((2, 3, 16, 16), np.float32))


def test_track_false_trains_without_touching_mlflow(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    params = yaml.safe_load(ws.params.read_text())
    params["train"]["track"] = False
    ws.params.write_text(yaml.safe_dump(params))
    with tracking_env(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path):
        assert ws.train("svm_fusion") == 0
    assert (ws.out("svm_fusion") / "model.pkl").exists()
    record = json.loads(run_record_path(ws.out("svm_fusion")).read_text())
    assert record["tracked"] is False  # the file DVC expects, saying there is no run
    assert not (tmp_path / "mlflow.db").exists()
    assert record["computed_on"]["train.device_used"] == "cpu"  # what MLflow would have had


BLOCK_MLFLOW = """
import sys
class _NoMlflow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "mlflow":
            raise ModuleNotFoundError("mlflow is not installed here")
sys.meta_path.insert(0, _NoMlflow())
"""


def test_untracked_training_runs_where_mlflow_is_not_installed(tmp_path: Path) -> None:
    """A rented GPU machine may lack MLflow: with tracking off the stage never imports it."""
    ws = make_workspace(tmp_path / "ws")
    params = yaml.safe_load(ws.params.read_text())
    params["train"].update(track=False, epochs=1)
    ws.params.write_text(yaml.safe_dump(params))
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_MLFLOW)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(REPO_ROOT)])}
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.train", "--arch", "baseline_cnn",
         "--params", str(ws.params), "--data", str(ws.data), "--out",
         str(ws.out("baseline_cnn")), "--tune-dir", str(ws.root / "tune")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (ws.out("baseline_cnn") / "metrics.json").exists()
    # the measured speed, kept in the uncached run record instead of MLflow
    record = json.loads(run_record_path(ws.out("baseline_cnn")).read_text())
    assert record["timings"]["train_images_per_second"] > 0
    probe = subprocess.run([sys.executable, "-c", "import mlflow"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode != 0  # the blocker held: MLflow was out of reach


def test_bad_track_value_and_unreachable_server_fail_fast_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = make_workspace(tmp_path)
    params = yaml.safe_load(ws.params.read_text())
    params["train"]["track"] = "yes"
    ws.params.write_text(yaml.safe_dump(params))
    assert ws.train("svm_fusion") == 2
    assert "train.track" in capsys.readouterr().err

    params["train"]["track"] = True
    ws.params.write_text(yaml.safe_dump(params))
    with tracking_env(f"http://127.0.0.1:{free_port()}", tmp_path):
        assert ws.train("svm_fusion") == 2
    err = capsys.readouterr().err
    assert "unreachable" in err and len(err.strip().splitlines()) == 1
    assert not (ws.out("svm_fusion") / "model.pkl").exists()  # failed before training


def test_a_run_left_running_by_a_dead_process_is_marked_killed(tmp_path: Path) -> None:
    """A training run killed with SIGKILL never ends its MLflow run; the next start does."""
    import socket
    import subprocess
    import sys

    from components.tracking.training_run import HOST_TAG, PID_TAG, mark_dead_runs_killed

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with tracking_env(uri, tmp_path):
        mlflow.set_tracking_uri(uri)
        client = MlflowClient(uri)
        experiment = client.create_experiment("ferops/test", str(tmp_path / "artifacts"))
        host = socket.gethostname()
        orphan = client.create_run(experiment, tags={HOST_TAG: host, PID_TAG: dead})
        alive = client.create_run(experiment, tags={HOST_TAG: host, PID_TAG: "1"})
        elsewhere = client.create_run(experiment, tags={HOST_TAG: "other", PID_TAG: dead})
        assert mark_dead_runs_killed(experiment) == [orphan.info.run_id]
        status = {run: client.get_run(run).info.status for run in
                  (orphan.info.run_id, alive.info.run_id, elsewhere.info.run_id)}
    assert status == {orphan.info.run_id: "KILLED", alive.info.run_id: "RUNNING",
                      elsewhere.info.run_id: "RUNNING"}
