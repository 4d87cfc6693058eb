"""The shared stores on a real PostgreSQL, as the README tells teams to run them.

- an Optuna study on PostgreSQL shared by three ``python -m pipelines.tune`` workers, one
  SIGKILLed mid-trial: its trial ends FAIL and the others complete theirs;
- an ``mlflow server`` with a PostgreSQL backend store and its own artifact root, used by a
  training run, a tracked tuning study and the registry (promote, rollback, a lost race).
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from tests.registry.conftest import Project, Server

# Imported registry tests are collected here too, with this module's ``project`` fixture: the
# same promote / rollback / race checks, run against the PostgreSQL-backed server.
from tests.registry.test_promotion import (  # noqa: F401
    test_better_challenger_passes_gate_and_aliases_move,
    test_losing_a_race_to_a_better_winner_exits_0_and_names_it,
    test_no_champion_best_passing_candidate_becomes_champion,
    test_rollback_restores_previous_champion,
)
from tests.stores.postgres import Postgres
from tests.tracking.conftest import (
    free_port,
    make_workspace,
    mlflow_server_command,
    running,
    tracking_env,
)
from tests.tuning.conftest import (  # noqa: F401 - data_dir is a fixture used below
    data_dir,
    make_params,
    run_worker,
    subprocess_env,
    tune_command,
    write_params,
)


def _wait_for_a_running_epoch(url: str, worker, epochs: int, deadline_s: float = 120) -> int:
    """Poll the study until a RUNNING trial has reported an epoch with at least two of its
    ``epochs`` still to go (so a kill right after lands mid-trial); returns its number."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        assert worker.poll() is None, worker.communicate()[0][-3000:]
        names = optuna.get_all_study_names(url)
        if names:
            for trial in optuna.load_study(study_name=names[0], storage=url).trials:
                if (trial.state == TrialState.RUNNING
                        and 0 < len(trial.intermediate_values) <= epochs - 2):
                    return trial.number
        time.sleep(0.05)
    raise AssertionError("no trial reported an epoch")


def test_a_postgresql_study_shared_by_three_workers_survives_a_killed_one(
        postgres: Postgres, data_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    url = postgres.create_database("optuna_workers")
    # Trials long enough (about 3 s) for the poll to see one mid-run: at 6 epochs a warm
    # worker finished a whole trial in 0.5 s, between two polls of the study.
    epochs = 40
    params = write_params(tmp_path, make_params(n_trials=2, epochs=epochs, heartbeat_interval=1))
    env = subprocess_env(tmp_path, OPTUNA_STORAGE=url)
    doomed = run_worker(tune_command(params, data_dir, tmp_path / "out0"), env, tmp_path)
    killed = _wait_for_a_running_epoch(url, doomed, epochs)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    time.sleep(2.5)  # past the heartbeat grace period (2 x 1 s): the trial is stale
    workers = [run_worker(tune_command(params, data_dir, tmp_path / f"out{i}"), env, tmp_path)
               for i in (1, 2)]
    for worker in workers:
        output = worker.communicate(timeout=300)[0]
        assert worker.returncode == 0, output[-3000:]
    (name,) = optuna.get_all_study_names(url)
    trials = optuna.load_study(study_name=name, storage=url).trials
    states = [t.state for t in trials]
    assert states[killed] == TrialState.FAIL  # the trial running when its worker died
    # the survivors' four, plus the doomed worker's first when it died in its second
    assert states.count(TrialState.COMPLETE) == 4 + killed
    assert states.count(TrialState.RUNNING) == 0
    assert len({t.params["lr"] for t in trials}) == len(trials)  # no draw repeated


@pytest.fixture(scope="module")
def pg_server(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[Server, str]]:
    """``mlflow server`` on a PostgreSQL backend store, artifacts under a separate root."""
    root = tmp_path_factory.mktemp("pg-mlflow")
    backend = postgres.create_database("mlflow")
    port = free_port()
    with running(mlflow_server_command(root, port, backend), port, root / "server.log") as url:
        yield Server(url, root), postgres.create_database("optuna_tracked")


def test_training_and_a_tracked_study_land_in_a_postgresql_backed_server(
        pg_server: tuple[Server, str], data_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    server, optuna_url = pg_server
    ws = make_workspace(tmp_path / "project")
    with tracking_env(server.url, ws.root):
        assert ws.train("baseline_cnn", name="train_pg") == 0
        record = ws.run_record("baseline_cnn", name="train_pg")
    client = MlflowClient(server.url)
    run = client.get_run(record["run_id"])
    assert run.info.status == "FINISHED" and "test_uar" in run.data.metrics
    assert list((server.root / "server-artifacts").rglob("MLmodel"))

    params = write_params(tmp_path, make_params(n_trials=2, epochs=1, track=True))
    env = subprocess_env(tmp_path, OPTUNA_STORAGE=optuna_url, MLFLOW_TRACKING_URI=server.url)
    worker = run_worker(tune_command(params, data_dir, tmp_path / "tune"), env, tmp_path)
    output = worker.communicate(timeout=300)[0]
    assert worker.returncode == 0, output[-3000:]
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    names = {r.info.run_name for r in runs}
    assert {"tune-baseline_cnn", "trial-0", "trial-1"} <= names
    assert all(r.info.status == "FINISHED" for r in runs)


@pytest.fixture
def project(pg_server: tuple[Server, str], tmp_path: Path) -> Iterator[Project]:
    """The registry tests' project, on the PostgreSQL-backed server."""
    server = pg_server[0]
    proj = Project(server, tmp_path, f"t{uuid.uuid4().hex[:8]}",
                   {"model_prefix": "", "min_delta": 0.005, "class_recall_floor": 0.1})
    proj.write_params(model_prefix=proj.prefix)
    with tracking_env(server.url, tmp_path):
        mlflow.set_tracking_uri(server.url)
        yield proj

