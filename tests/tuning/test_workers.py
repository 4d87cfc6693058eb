"""Real worker processes: a study survives a SIGKILL mid-trial, and two workers share one.

Workers are ``python -m pipelines.tune`` subprocesses, as a user or DVC starts them.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import mlflow
import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from components.tracking import experiment_name
from components.tuning import open_storage, storage_url
from tests.tuning.conftest import (
    make_params,
    run_worker,
    subprocess_env,
    tune_command,
    write_params,
)

STUDY_PREFIX = "ferops-baseline_cnn-synthetic-"  # + the data/recipe fingerprint


def only_study(storage) -> str:
    """The one study a storage holds (its name carries the fingerprint)."""
    (name,) = optuna.get_all_study_names(storage)
    assert name.startswith(STUDY_PREFIX)
    return name


def _wait_for_epoch_of_trial(out: Path, worker, number: int, deadline_s: float = 60) -> None:
    """Poll the journal until trial ``number`` is RUNNING and has finished an epoch."""
    journal = out / "journal.log"
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        assert worker.poll() is None, worker.communicate()[0][-3000:]
        if journal.exists() and journal.stat().st_size > 0:
            storage = open_storage(storage_url(out))
            names = optuna.get_all_study_names(storage)
            study = optuna.load_study(study_name=names[0], storage=storage) if names else None
            trials = study.get_trials(deepcopy=False) if study else []
            if len(trials) > number and trials[number].intermediate_values:
                assert trials[number].state == TrialState.RUNNING
                return
        time.sleep(0.05)
    raise AssertionError(f"trial {number} never reported an epoch")


def test_study_killed_mid_trial_resumes(tmp_path: Path, data_dir: Path) -> None:
    params = write_params(tmp_path, make_params(n_trials=2, epochs=5, track=True))
    out = tmp_path / "tune"
    env = subprocess_env(tmp_path)
    worker = run_worker(tune_command(params, data_dir, out), env, tmp_path)
    _wait_for_epoch_of_trial(out, worker, 1)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    storage = open_storage(storage_url(out))
    before = optuna.load_study(study_name=only_study(storage), storage=storage).trials
    assert [t.state for t in before] == [TrialState.COMPLETE, TrialState.RUNNING]
    assert not (out / "chosen_params.json").exists()

    restart = run_worker(tune_command(params, data_dir, out, "--n-trials", "1"), env, tmp_path)
    output = restart.communicate(timeout=120)[0]
    assert restart.returncode == 0, output[-3000:]
    storage = open_storage(storage_url(out))
    after = optuna.load_study(study_name=only_study(storage), storage=storage).trials
    assert [t.number for t in after] == [0, 1, 2]
    assert [t.state for t in after] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    summary = json.loads((out / "study.json").read_text())
    assert (summary["n_trials"], summary["failed"], summary["running"]) == (3, 1, 0)
    assert summary["best_value"] <= before[0].value  # the first trial's result is kept
    best = min((t for t in after if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    assert json.loads((out / "chosen_params.json").read_text()) == best.params

    # The killed worker's MLflow runs (its parent and trial 1) are closed, not left running.
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    experiment = mlflow.get_experiment_by_name(experiment_name("image", "synthetic"))
    runs = MlflowClient().search_runs([experiment.experiment_id])
    assert not [r for r in runs if r.info.status == "RUNNING"]
    killed = {r.info.run_name for r in runs if r.info.status == "KILLED"}
    assert killed == {"tune-baseline_cnn", "trial-1"}


def test_two_workers_share_one_study(tmp_path: Path, data_dir: Path) -> None:
    params = write_params(tmp_path, make_params(n_trials=2, epochs=1))
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    env = subprocess_env(tmp_path, OPTUNA_STORAGE=url)
    workers = [run_worker(tune_command(params, data_dir, tmp_path / f"out{i}"), env, tmp_path)
               for i in range(2)]
    for worker in workers:
        output = worker.communicate(timeout=180)[0]
        assert worker.returncode == 0, output[-3000:]
    trials = optuna.load_study(study_name=only_study(url), storage=url).trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.params["lr"] for t in trials}) == 4  # no worker re-ran another's draw
    assert not (tmp_path / "out0" / "journal.log").exists()  # the shared RDB held the study
    summaries = [json.loads((tmp_path / f"out{i}" / "study.json").read_text()) for i in (0, 1)]
    assert all(s["storage"] == url for s in summaries)
    # The worker that finished last saw every trial complete; the other may have written its
    # summary while its peer's last trial was still running (so a different best).
    last = max(range(2), key=lambda i: summaries[i]["complete"])
    assert (summaries[last]["n_trials"], summaries[last]["complete"]) == (4, 4)
    best = min(trials, key=lambda t: t.value)
    assert json.loads((tmp_path / f"out{last}" / "chosen_params.json").read_text()) == best.params
