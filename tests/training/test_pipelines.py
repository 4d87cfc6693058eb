"""The train and evaluate stages on tiny synthetic preprocessed arrays, with real models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from mlflow import MlflowClient

from components.isa import NATIVE
from components.tracking.store import run_record_path
from pipelines import evaluate as evaluate_stage_module
from pipelines import train as train_stage_module
from tests.synthetic_task import make_synthetic_task
from tests.test_isa import uncapped_env

REPO_ROOT = Path(__file__).resolve().parents[2]

PARAMS = {
    "train": {
        "architectures": ["fusion_early", "svm_fusion", "c3d_ecstfl"],
        "seed": 0, "epochs": 2, "batch_size": 16, "lr": 0.01, "progress": False,
        "overrides": {"svm_fusion": {"folds": 2, "epochs": 1}},
        "model_kwargs": {"fusion_early": {"width": 0.25}, "svm_fusion": {}},
    }
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ws")
    make_synthetic_task(root / "preprocess", "rgbd", size=32,
                        sizes={"train": 32, "val": 16, "test": 16}, occlusion=(25, 50))
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    tuned = root / "tune" / "fusion_early" / "chosen_params.json"
    tuned.parent.mkdir(parents=True)
    tuned.write_text(json.dumps({"lr": 0.002}))
    return root


def _run_train(root: Path, arch: str) -> int:
    return train_stage_module.main([
        "--arch", arch, "--params", str(root / "params.yaml"), "--data",
        str(root / "preprocess"), "--out", str(root / "train" / arch),
        "--tune-dir", str(root / "tune"),
    ])


def test_train_stage_writes_model_metrics_and_plots(workspace: Path) -> None:
    assert _run_train(workspace, "fusion_early") == 0
    run = workspace / "train" / "fusion_early"
    metrics = json.loads((run / "metrics.json").read_text())
    for split in ("test", "test_occ25", "test_occ50"):
        assert 0.0 <= metrics[f"{split}_uar"] <= 1.0
    assert metrics["epochs_run"] == 2
    payload = torch.load(run / "model.pt", weights_only=False)
    assert payload["spec"]["in_channels"] == 7  # depth 1 + colour 3 + 2-D colour 3
    assert payload["spec"]["task"] == "rgbd"
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=False)
    assert checkpoint["config"]["lr"] == 0.002  # artifacts/tune best_params merged
    assert (run / "history.csv").read_text().startswith("epoch,")
    assert (run / "plots" / "learning_curves.png").stat().st_size > 1000


def test_train_stage_fits_estimators_with_the_project_loop(workspace: Path) -> None:
    assert _run_train(workspace, "svm_fusion") == 0
    run = workspace / "train" / "svm_fusion"
    assert (run / "model.pkl").exists()
    assert "test_accuracy" in json.loads((run / "metrics.json").read_text())
    # every network it trained has its curve: 2 folds and the final net per modality
    networks = pd.read_csv(run / "sub_models.csv")
    assert list(networks.columns[:2]) == ["part", "epoch"]
    assert list(dict.fromkeys(networks["part"])) == [
        "nn2_depth fold 1", "nn2_depth fold 2", "nn3_color fold 1", "nn3_color fold 2",
        "nn2_depth", "nn3_color"]
    validated = networks.dropna(subset=["val_uar"])
    assert set(validated["part"]) == {"nn2_depth", "nn3_color"}  # the folds had no val data
    assert networks["train_loss"].notna().all()
    assert (run / "plots" / "sub_model_curves.png").stat().st_size > 1000


def test_train_stage_skips_models_the_data_cannot_feed(workspace: Path, capsys) -> None:
    assert _run_train(workspace, "c3d_ecstfl") == 0  # no video task in this workspace
    metrics = json.loads((workspace / "train" / "c3d_ecstfl" / "metrics.json").read_text())
    assert metrics["skipped"] is True and "frames" in metrics["reason"]
    assert "skipped" in capsys.readouterr().out


def test_train_stage_rejects_unknown_arch(workspace: Path, capsys) -> None:
    assert _run_train(workspace, "resnet9000") == 2
    assert "resnet9000" in capsys.readouterr().err


def test_evaluate_writes_comparison_files(workspace: Path) -> None:
    for arch in ("fusion_early", "svm_fusion", "c3d_ecstfl"):
        if not (workspace / "train" / arch / "metrics.json").exists():
            assert _run_train(workspace, arch) == 0
    out = workspace / "evaluate"
    # The manifest's lighting per test sample: every third dark, every third bright.
    ids = np.load(workspace / "preprocess" / "image" / "test" / "ids.npy").astype(str)
    levels = [("normal", "dark", "bright")[i % 3] for i in range(len(ids))]
    yaws = [(-5.0, 20.0, 31.0, -44.0)[i % 4] for i in range(len(ids))]
    # The occluded twins: their occluder kind, alternating (claim 14's bins).
    occ_dirs = sorted((workspace / "preprocess" / "image").glob("test_occ*"))
    occ_ids = np.concatenate([np.load(d / "ids.npy").astype(str) for d in occ_dirs])
    kinds = [("mouth", "eyes_band")[i % 2] for i in range(len(occ_ids))]
    manifest = workspace / "lighting.parquet"
    pd.concat([
        pd.DataFrame({"id": ids, "light_level": levels, "yaw": yaws}),
        pd.DataFrame({"id": occ_ids, "occluder": kinds}),
    ]).to_parquet(manifest)
    assert evaluate_stage_module.main([
        "--params", str(workspace / "params.yaml"), "--train", str(workspace / "train"),
        "--data", str(workspace / "preprocess"), "--out", str(out), "--manifest", str(manifest),
    ]) == 0
    flat = json.loads((out / "comparison.json").read_text())
    assert set(flat) >= {"fusion_early/test/accuracy", "fusion_early/test_occ50/uar",
                         "svm_fusion/test_occ25/macro_f1"}
    assert not any(key.startswith("c3d_ecstfl") for key in flat)
    trained = json.loads((workspace / "train" / "fusion_early" / "metrics.json").read_text())
    # Re-scoring the saved model reproduces the train stage's own test numbers.
    assert flat["fusion_early/test/accuracy"] == pytest.approx(trained["test_accuracy"])
    table = (out / "comparison.md").read_text()
    assert "| fusion_early |" in table and "50% occl." in table and "c3d_ecstfl" in table
    assert (out / "accuracy_vs_occlusion.png").read_bytes()[:4] == b"\x89PNG"
    # Per lighting level: the bins partition the clean test split, so their accuracies
    # weighted by size give the overall one; "extreme" is dark and bright together.
    counts = {level: levels.count(level) for level in ("normal", "dark", "bright")}
    weighted = sum(flat[f"fusion_early/test_light_{lv}/accuracy"] * n for lv, n in counts.items())
    assert weighted / len(ids) == pytest.approx(flat["fusion_early/test/accuracy"])
    extreme = (flat["fusion_early/test_light_dark/accuracy"] * counts["dark"]
               + flat["fusion_early/test_light_bright/accuracy"] * counts["bright"])
    assert flat["fusion_early/test_light_extreme/accuracy"] == pytest.approx(
        extreme / (counts["dark"] + counts["bright"]))
    assert "## Clean test accuracy by lighting" in table
    # Yaw bins by |degrees| partition the clean test split the same way.
    yaw_counts = {"0_15": yaws.count(-5.0), "15_30": yaws.count(20.0),
                  "30_45": yaws.count(31.0) + yaws.count(-44.0)}
    weighted = sum(flat[f"fusion_early/test_yaw_{b}/accuracy"] * n for b, n in yaw_counts.items())
    assert weighted / len(ids) == pytest.approx(flat["fusion_early/test/accuracy"])
    assert "## Clean test accuracy by head yaw" in table and "30-45 (n=" in table
    # Occluder kinds pool every occluded level: together they are the occluded splits.
    occ_acc = sum(flat[f"fusion_early/{d.name}/accuracy"] for d in occ_dirs) / len(occ_dirs)
    by_kind = sum(flat[f"fusion_early/test_occluder_{k}/accuracy"] * kinds.count(k)
                  for k in ("mouth", "eyes_band")) / len(kinds)
    assert by_kind == pytest.approx(occ_acc)
    assert "## Occluded test accuracy by occluder kind" in table
    assert not (out / "features").exists() or not any((out / "features").iterdir())
    # svm_fusion's depth and colour networks scored alone beside the fusion (claim 4).
    for member in ("nn2_depth", "nn3_color"):
        assert 0.0 <= flat[f"svm_fusion/test_member_{member}/accuracy"] <= 1.0
        assert f"| svm_fusion: {member} alone |" in table
    assert f"normal (n={counts['normal']})" in table
    # The views dvc reads: one comparison file per task, a six-key summary (the only
    # metrics file), clean-test rows for the confusion template, long tables for the lines.
    tasks = {p.stem: json.loads(p.read_text()) for p in (out / "tasks").glob("*.json")}
    assert set(tasks) == {"rgbd"} and set(tasks["rgbd"]) == {"fusion_early", "svm_fusion"}
    assert tasks["rgbd"]["fusion_early"] == pytest.approx({
        "accuracy": flat["fusion_early/test/accuracy"], "uar": flat["fusion_early/test/uar"],
        "normal_light": flat["fusion_early/test_light_normal/accuracy"],
        "extreme_light": flat["fusion_early/test_light_extreme/accuracy"],
        "occluded_50": flat["fusion_early/test_occ50/accuracy"]}, abs=1e-4)
    summary = json.loads((out / "summary.json").read_text())
    assert summary == pytest.approx({
        "rgbd_uar": max(m["uar"] for m in tasks["rgbd"].values()),
        "rgbd_acc": max(m["accuracy"] for m in tasks["rgbd"].values())})
    rows = json.loads((out / "predictions" / "fusion_early.json").read_text())
    assert len(rows) == len(ids) and set(rows[0]) == {"actual", "predicted"}
    right = sum(r["actual"] == r["predicted"] for r in rows) / len(rows)
    assert right == pytest.approx(flat["fusion_early/test/accuracy"])
    occlusion = pd.read_csv(out / "occlusion.csv")
    assert set(occlusion["architecture"]) == {"fusion_early", "svm_fusion"}
    assert list(occlusion.columns) == ["architecture", "occlusion", "accuracy"]
    curves = pd.read_csv(out / "learning_curves.csv")
    assert curves.columns[0] == "architecture" and {"epoch", "val_uar"} <= set(curves.columns)
    # the estimator's validated networks are lines of their own beside its one-row history
    assert {"svm_fusion", "svm_fusion: nn2_depth", "svm_fusion: nn3_color"} <= set(
        curves["architecture"])
    assert curves["val_uar"].notna().all()


def _kernels(env: dict[str, str]) -> str:
    """The instruction set torch's kernels run at in a new process with ``env``."""
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True).stdout.strip()


def test_train_isa_native_restarts_the_stage_without_the_cap(workspace: Path) -> None:
    """``train.isa: native`` on the command line: the stage runs uncapped (its tracked run
    names the kernels a process without the cap gets) and still writes its outputs."""
    params = {"train": {**PARAMS["train"], "isa": "native", "precision": "auto"}}
    path = workspace / "native.yaml"
    path.write_text(yaml.safe_dump(params))
    out = workspace / "native_train" / "fusion_early"
    env = uncapped_env()
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.train", "--arch", "fusion_early", "--params",
         str(path), "--data", str(workspace / "preprocess"), "--out", str(out),
         "--tune-dir", str(workspace / "tune")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "restarting without the AVX2 cap" in done.stderr
    run_id = json.loads(run_record_path(out).read_text())["run_id"]
    tags = MlflowClient().get_run(run_id).data.tags
    assert tags["machine.kernels"] == _kernels({**env, NATIVE: "1"})
    assert tags["train.precision_used"] in ("fp32", "bf16")
    assert (out / "model.pt").exists()


def test_train_isa_native_from_python_code_says_how_to_run_it(workspace: Path,
                                                              capsys) -> None:
    """A call from Python cannot restart the process: one line says how instead of training
    under the cap that the params asked to lift."""
    path = workspace / "native_inproc.yaml"
    path.write_text(yaml.safe_dump({"train": {**PARAMS["train"], "isa": "native"}}))
    env_native = os.environ.pop(NATIVE, None)
    try:
        code = train_stage_module.main([
            "--arch", "fusion_early", "--params", str(path), "--data",
            str(workspace / "preprocess"), "--out", str(workspace / "never"),
        ])
    finally:
        if env_native is not None:
            os.environ[NATIVE] = env_native
    assert code == 2
    err = capsys.readouterr().err
    assert "train.isa: native" in err and "python -m pipelines.train" in err
    assert not (workspace / "never").exists()
