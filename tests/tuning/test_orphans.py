"""Trials left RUNNING by a dead worker on this host are failed when a worker opens the
study. (Two workers opening at the same moment may both try; the loser's
``UpdateFinishedTrialError`` is caught: seen on PostgreSQL in the three-workers test.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState

from components.tuning.study import HOST_ATTR, PID_ATTR, fail_orphaned_trials


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def _study_with_an_orphan(tmp_path: Path) -> tuple[str, optuna.Study]:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    trial = study.ask()
    trial.set_user_attr(HOST_ATTR, socket.gethostname())
    trial.set_user_attr(PID_ATTR, _dead_pid())
    return url, study


def test_a_dead_workers_trial_is_failed_once(tmp_path: Path) -> None:
    url, _ = _study_with_an_orphan(tmp_path)
    study = optuna.load_study(study_name="s", storage=url)
    assert fail_orphaned_trials(study) == [0]
    assert study.trials[0].state == TrialState.FAIL
    assert fail_orphaned_trials(optuna.load_study(study_name="s", storage=url)) == []


def test_a_live_workers_trial_is_left_running(tmp_path: Path) -> None:
    url, study = _study_with_an_orphan(tmp_path)
    alive = study.ask()
    alive.set_user_attr(HOST_ATTR, socket.gethostname())
    alive.set_user_attr(PID_ATTR, os.getppid())  # the test runner's parent: alive
    assert fail_orphaned_trials(optuna.load_study(study_name="s", storage=url)) == [0]
    assert study.trials[1].state == TrialState.RUNNING
