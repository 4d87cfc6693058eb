"""A real ``mlflow server`` process on 127.0.0.1 receives a tuning study.

The study's parent run and one nested run per trial arrive over HTTP, with the trial params,
the objective value and the study's plots stored by the server (proxied artifacts). That a
model logged to such a server registers, loads back by URI and predicts the same outputs is
checked by ``tests/tracking/test_server.py`` (not repeated here).
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from components.tracking import experiment_name
from components.tuning import open_storage, storage_url
from pipelines import tune as tune_pipeline
from tests.tracking.conftest import free_port, mlflow_server_command, running, tracking_env
from tests.tuning.conftest import make_params

PARENT_TAG = "mlflow.parentRunId"


def test_study_lands_on_a_server_as_parent_with_nested_trial_runs(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    params = make_params(n_trials=2, epochs=1, track=True)
    out = tmp_path / "tune" / "baseline_cnn"
    port = free_port()
    server_root = tmp_path / "server"
    server_root.mkdir()
    with running(mlflow_server_command(server_root, port), port, tmp_path / "server.log") as url:
        with tracking_env(url, tmp_path):
            summary = tune_pipeline.tune_stage(params, "baseline_cnn", data_dir, out)
        client = MlflowClient(url)
        experiment = client.get_experiment_by_name(experiment_name("image", "synthetic"))
        assert experiment is not None, "the study's experiment was not created on the server"
        runs = client.search_runs([experiment.experiment_id])
        artifacts = client.list_artifacts(
            next(r for r in runs if PARENT_TAG not in r.data.tags).info.run_id, "plots"
        )

    study = optuna.load_study(study_name=summary["study"], storage=open_storage(storage_url(out)))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2

    parents = [r for r in runs if PARENT_TAG not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.info.run_name == "tune-baseline_cnn"
    children = [r for r in runs if r.data.tags.get(PARENT_TAG) == parent.info.run_id]
    assert len(children) == len(runs) - 1 == 2  # every other run is one of its trials
    by_trial = {int(r.data.tags["optuna.trial_number"]): r for r in children}
    assert sorted(by_trial) == [0, 1]
    for trial in study.trials:
        run = by_trial[trial.number]
        assert run.info.status == "FINISHED" and run.data.tags["state"] == "COMPLETE"
        assert {k: float(run.data.params[k]) for k in trial.params} == pytest.approx(trial.params)
        assert run.data.metrics["value"] == pytest.approx(trial.value)  # the objective
        assert "val_loss" in run.data.metrics  # the per-epoch curve the pruner saw

    best = min(study.trials, key=lambda t: t.value)  # val_loss: lower is better
    assert json.loads((out / "chosen_params.json").read_text()) == best.params
    assert parent.data.metrics["best_value"] == pytest.approx(best.value)
    assert float(parent.data.params["best.lr"]) == pytest.approx(best.params["lr"])
    assert "plots/optimization_history.png" in {a.path for a in artifacts}
    # The server stored the plots itself (proxied artifacts), not the client's filesystem.
    assert list((server_root / "server-artifacts").rglob("optimization_history.png"))
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlartifacts").exists()
