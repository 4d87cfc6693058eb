"""The tune stage in-process: study outputs, pruning, MLflow runs, and the train-stage merge.

One module-scoped study (3 trials, real Optuna journal, real MLflow sqlite in tmp) feeds
most tests; the second of its trials is enqueued with an absurd learning rate so the median
pruner has something to cut.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import optuna
import pytest
import torch
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from components.errors import ConfigError
from components.tracking import experiment_name
from components.tuning import open_storage, storage_url
from pipelines import train as train_pipeline
from pipelines import tune as tune_pipeline
from tests.tuning.conftest import make_params, write_params

REPO_ROOT = Path(__file__).resolve().parents[2]
GOOD, BAD = {"lr": 0.003, "dropout": 0.2}, {"lr": 50.0, "dropout": 0.2}


def _study_params() -> dict[str, Any]:
    params = make_params(
        n_trials=3, epochs=3, pruner="median", pruner_startup_trials=1, pruner_warmup_epochs=1,
        track=True, enqueue={"baseline_cnn": [GOOD, BAD]},
    )
    params["tune"]["spaces"]["baseline_cnn"]["lr"]["high"] = 100.0
    return params


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("tune")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        patch.setenv("FEROPS_PROJECT_ROOT", str(root))
        patch.delenv("OPTUNA_STORAGE", raising=False)
        params = _study_params()
        out = root / "tune" / "baseline_cnn"
        summary = tune_pipeline.tune_stage(params, "baseline_cnn", data_dir, out)
        study = optuna.load_study(study_name=summary["study"],
                                  storage=open_storage(storage_url(out)))
        runs = MlflowClient().search_runs(
            [mlflow.get_experiment_by_name(experiment_name("image", "synthetic")).experiment_id]
        )
        yield {"root": root, "out": out, "summary": summary, "study": study, "runs": runs,
               "params": params}


def test_study_writes_best_params_summary_and_plots(tuned: dict[str, Any]) -> None:
    out, summary, study = tuned["out"], tuned["summary"], tuned["study"]
    on_disk = json.loads((out / "study.json").read_text())
    assert re.fullmatch(r"ferops-baseline_cnn-synthetic-[0-9a-f]{8}", on_disk["study"])
    assert on_disk["n_trials"] == 3 == len(study.trials)
    assert on_disk["complete"] + on_disk["pruned"] == 3 and on_disk["failed"] == 0
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    best = min(complete, key=lambda t: t.value)  # val_loss: lower is better
    assert on_disk["best_value"] == pytest.approx(best.value)
    assert json.loads((out / "chosen_params.json").read_text()) == best.params
    assert summary["best_params"] == best.params
    plots = {p.name for p in (out / "plots").glob("*.png")}
    assert {"optimization_history.png", "intermediate_values.png"} <= plots
    assert all((out / "plots" / p).stat().st_size > 5000 for p in plots)
    assert (out / "journal.log").stat().st_size > 0


def test_median_pruner_stops_the_bad_trial(tuned: dict[str, Any]) -> None:
    trials = tuned["study"].trials
    assert trials[0].params == GOOD and trials[0].state == TrialState.COMPLETE
    assert trials[1].params == BAD
    assert trials[1].state == TrialState.PRUNED
    assert len(trials[1].intermediate_values) < 3  # cut before its last epoch
    assert tuned["summary"]["pruned"] >= 1


def test_mlflow_parent_run_with_nested_trial_runs(tuned: dict[str, Any]) -> None:
    runs = tuned["runs"]
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 3
    by_trial = {int(r.data.tags["optuna.trial_number"]): r for r in children}
    assert by_trial[0].data.tags["state"] == "COMPLETE"
    assert by_trial[1].data.tags["state"] == "PRUNED"
    assert float(by_trial[1].data.params["lr"]) == BAD["lr"]
    history = MlflowClient().get_metric_history(by_trial[0].info.run_id, "val_loss")
    assert sorted(m.step for m in history) == [1, 2, 3]
    assert by_trial[0].data.metrics["value"] == pytest.approx(min(m.value for m in history))
    # The trial's speed, as a train run logs it (trials on other machines compare with it).
    assert by_trial[0].data.metrics["train_images_per_second"] > 0
    assert parent.data.metrics["best_value"] == pytest.approx(tuned["summary"]["best_value"])
    assert parent.data.params["pruner"] == "median"
    assert {k for k in parent.data.params if k.startswith("best.")} == {"best.lr", "best.dropout"}
    artifacts = {a.path for a in MlflowClient().list_artifacts(parent.info.run_id, "plots")}
    assert "plots/optimization_history.png" in artifacts


def test_train_stage_merges_best_params(tuned: dict[str, Any], data_dir: Path) -> None:
    root = tuned["root"]
    best = json.loads((tuned["out"] / "chosen_params.json").read_text())
    out = root / "train" / "baseline_cnn"
    train_pipeline.train_stage(tuned["params"], "baseline_cnn", data_dir, out,
                               tune_dir=root / "tune")
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=False)
    assert checkpoint["config"]["lr"] == pytest.approx(best["lr"])
    assert checkpoint["config"]["epochs"] == 1  # the train budget, not the tuning one


def test_rerun_adds_trials_to_the_same_study(tuned: dict[str, Any], data_dir: Path,
                                             tmp_path: Path) -> None:
    before = tuned["summary"]
    out = tmp_path / "baseline_cnn"
    shutil.copytree(tuned["out"], out)  # the study lives in out/journal.log
    params = _study_params()  # the same data, trial budget and recipe: the same study
    params["tune"]["track"] = False
    after = tune_pipeline.tune_stage(params, "baseline_cnn", data_dir, out, n_trials=1)
    assert after["n_trials"] == before["n_trials"] + 1
    assert after["best_value"] <= before["best_value"] or math.isclose(
        after["best_value"], before["best_value"])


def test_a_fresh_study_with_the_same_params_gives_the_same_bytes(
    tuned: dict[str, Any], data_dir: Path, tmp_path: Path
) -> None:
    """What the DVC stage relies on: a fresh folder, same params and data -> the same trials,
    chosen_params.json, plots and study.json (but for the journal path); the journal itself
    (worker ids, times) is the one file that differs and .dvcignore keeps it out of the hash."""
    params = _study_params()
    params["tune"]["track"] = False
    again = tmp_path / "baseline_cnn"
    tune_pipeline.tune_stage(params, "baseline_cnn", data_dir, again)
    first = tuned["out"]
    files = sorted(p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again).as_posix() for p in again.rglob("*")
                           if p.is_file())
    for name in files:
        if name == "journal.log":
            continue
        old, new = (first / name).read_bytes(), (again / name).read_bytes()
        if name == "study.json":
            old, new = (json.loads(x) for x in (old, new))
            assert old.pop("storage") != new.pop("storage")  # the folder differs
        assert old == new, f"{name} differs between two fresh studies"
    ignored = (REPO_ROOT / ".dvcignore").read_text().splitlines()
    assert "artifacts/tune/*/journal.log" in ignored


def test_arch_the_data_cannot_feed_is_skipped(tmp_path: Path, data_dir: Path, capsys) -> None:
    params = write_params(tmp_path, make_params())
    out = tmp_path / "tune" / "c3d_ecstfl"
    code = tune_pipeline.main(["--arch", "c3d_ecstfl", "--params", str(params),
                               "--data", str(data_dir), "--out", str(out)])
    assert code == 0
    study = json.loads((out / "study.json").read_text())
    assert study["skipped"] is True and "frames" in study["reason"]
    assert json.loads((out / "chosen_params.json").read_text()) == {}
    assert "skipped" in capsys.readouterr().out


def test_unknown_arch_and_bad_space_fail_with_one_line(tmp_path: Path, data_dir: Path,
                                                       capsys) -> None:
    params = write_params(tmp_path, make_params())
    assert tune_pipeline.main(["--arch", "resnet9000", "--params", str(params),
                               "--data", str(data_dir)]) == 2
    assert "resnet9000" in capsys.readouterr().err
    bad = make_params()
    bad["tune"]["spaces"]["baseline_cnn"]["dropout"]["type"] = "gaussian"
    assert tune_pipeline.main(["--arch", "baseline_cnn", "--params",
                               str(write_params(tmp_path, bad)), "--data", str(data_dir)]) == 2
    assert "tune.spaces.baseline_cnn.dropout.type" in capsys.readouterr().err


def test_parameter_the_model_does_not_take_fails_before_any_trial(tmp_path: Path,
                                                                   data_dir: Path) -> None:
    params = make_params()
    params["tune"]["spaces"]["baseline_cnn"]["depth"] = {"type": "int", "low": 2, "high": 4}
    out = tmp_path / "tune"
    with pytest.raises(ConfigError, match="'depth'"):
        tune_pipeline.tune_stage(params, "baseline_cnn", data_dir, out)
    assert not (out / "journal.log").exists() or (out / "journal.log").stat().st_size == 0


def test_estimator_trial_reports_its_single_val_score(tmp_path: Path, data_dir: Path) -> None:
    params = make_params(n_trials=1, epochs=1, metric="val_uar", direction="maximize")
    params["tune"]["spaces"]["svm_fusion"] = {
        "C": {"type": "float", "low": 0.01, "high": 10.0, "log": True}}
    params["train"]["model_kwargs"]["svm_fusion"] = {
        "folds": 2, "depth_kwargs": {"width": 0.25, "fc_width": 16},
        "color_kwargs": {"width": 0.25, "fc_width": 16}}
    out = tmp_path / "svm_fusion"
    summary = tune_pipeline.tune_stage(params, "svm_fusion", data_dir, out)
    study = optuna.load_study(study_name=summary["study"], storage=open_storage(storage_url(out)))
    (trial,) = study.trials
    assert trial.state == TrialState.COMPLETE and not trial.intermediate_values
    assert 0.0 <= trial.value <= 1.0  # val UAR of the fused estimator
    assert set(json.loads((out / "chosen_params.json").read_text())) == {"C"}


def test_same_params_give_the_same_study(tmp_path: Path, data_dir: Path) -> None:
    params = make_params(n_trials=2, epochs=1)
    first = tune_pipeline.tune_stage(params, "baseline_cnn", data_dir, tmp_path / "a")
    second = tune_pipeline.tune_stage(params, "baseline_cnn", data_dir, tmp_path / "b")
    assert first["best_params"] == second["best_params"]
    assert first["best_value"] == second["best_value"]


def test_a_changed_trial_budget_or_recipe_starts_a_new_study_beside_the_old(
        data_dir: Path) -> None:
    """Trials of one study must be comparable: same data, trial length and base recipe."""
    from components.tuning.config import tune_config
    from components.tuning.study import study_fingerprint

    params = make_params(n_trials=1, epochs=2)
    cfg, train = tune_config(params["tune"]), params["train"]
    same = study_fingerprint("baseline_cnn", data_dir / "image", cfg, train)
    again = tune_config(params["tune"])
    assert same == study_fingerprint("baseline_cnn", data_dir / "image", again, dict(train))
    assert same == study_fingerprint("baseline_cnn", data_dir / "image", cfg,
                                     {**train, "architectures": ["baseline_cnn"], "track": False})
    longer = tune_config({**params["tune"], "epochs": 3})
    assert study_fingerprint("baseline_cnn", data_dir / "image", longer, train) != same
    assert study_fingerprint("baseline_cnn", data_dir / "image", cfg, {**train, "lr": 0.5}) != same
    other_data = data_dir.parent / "other_data"
    shutil.copytree(data_dir, other_data)
    labels = other_data / "image" / "train" / "y.npy"
    np.save(labels, np.roll(np.load(labels), 1))
    assert study_fingerprint("baseline_cnn", other_data / "image", cfg, train) != same
