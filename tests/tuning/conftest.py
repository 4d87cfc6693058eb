"""Tiny preprocessed data and tuning params shared by the tuning tests."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.synthetic_task import make_synthetic_task

REPO_ROOT = Path(__file__).resolve().parents[2]

PARAMS: dict[str, Any] = {
    "ingest": {"source": "synthetic"},
    "train": {
        "seed": 0, "epochs": 1, "batch_size": 8, "lr": 0.003, "progress": False,
        "patience": 0,
        "model_kwargs": {"baseline_cnn": {"width": 0.125, "hidden": 16, "block_dropout": 0.0}},
    },
    "tune": {
        "n_trials": 2, "timeout": 300, "epochs": 2, "metric": "val_loss",
        "direction": "minimize", "sampler_seed": 0, "pruner": "none", "progress": False,
        "track": False,
        "spaces": {
            "baseline_cnn": {
                "lr": {"type": "float", "low": 1.0e-3, "high": 1.0e-2, "log": True},
                "dropout": {"type": "float", "low": 0.1, "high": 0.5},
            },
            "c3d_ecstfl": {"lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True}},
        },
    },
}


def make_params(**tune_changes: Any) -> dict[str, Any]:
    """A deep copy of PARAMS with some ``tune`` keys changed."""
    params = copy.deepcopy(PARAMS)
    params["tune"].update(tune_changes)
    return params


def write_params(folder: Path, params: dict[str, Any]) -> Path:
    """params.yaml in ``folder``."""
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def tune_command(params: Path, data: Path, out: Path, *extra: str) -> list[str]:
    """``python -m pipelines.tune`` for baseline_cnn with the given files."""
    return [sys.executable, "-m", "pipelines.tune", "--arch", "baseline_cnn", "--params",
            str(params), "--data", str(data), "--out", str(out), *extra]


def subprocess_env(tmp: Path, **extra: str) -> dict[str, str]:
    """Environment of a tuning worker: quiet, MLflow in ``tmp``, the repo importable."""
    env = {k: v for k, v in os.environ.items() if k != "OPTUNA_STORAGE"}
    env.update(PYTHONPATH=str(REPO_ROOT), MLFLOW_TRACKING_URI=f"sqlite:///{tmp / 'mlflow.db'}",
               FEROPS_PROJECT_ROOT=str(tmp), OMP_NUM_THREADS="1")
    env.update(extra)
    return env


def run_worker(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    """Start a tuning worker process (output captured for failure messages)."""
    return subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """rgbd task only (no clips): 16x16 faces, 32 train / 16 val samples."""
    root = tmp_path_factory.mktemp("preprocess")
    make_synthetic_task(root, "rgbd", size=16, sizes={"train": 32, "val": 16, "test": 8},
                        occlusion=())
    return root
