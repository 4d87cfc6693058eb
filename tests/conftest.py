"""Shared fixtures: real data locations and quiet, offline settings for every test."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

import components  # noqa: F401 - importing it turns third-party telemetry off

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_fer2013_dir() -> Path | None:
    """Where FER2013 lives: $FER2013_DIR, else ../shared/datasets/fer2013 beside the repo."""
    candidates = [os.environ.get("FER2013_DIR"), REPO_ROOT.parent / "shared/datasets/fer2013"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "fer2013.csv.gz").exists():
            return Path(candidate)
    return None


@pytest.fixture(autouse=True)
def scratch_temp_dir(tmp_path_factory: pytest.TempPathFactory,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A test's in-process temporary files (MLflow's download of a model the test loads with
    ``mlflow.pyfunc.load_model``, which MLflow never deletes) go to a folder of its own under
    pytest's base folder, which pytest prunes, instead of piling up in /tmp (beside the
    test's ``tmp_path``, not in it: tests list what they leave there). In-process and per test
    only: the environment's TMPDIR is left alone (subprocesses such as PostgreSQL's ``initdb``
    run as another user and cannot enter pytest's private folder), and session fixtures, set
    up before this one, keep the system's folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("scratch-tmp")))


@pytest.fixture(autouse=True, scope="session")
def isolated_tracking_store(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Runs logged by tests go to a throwaway sqlite store, never the project's mlflow.db."""
    store = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}"


@pytest.fixture(scope="session")
def fer2013_dir() -> Path:
    """The real FER2013 folder; skips the test with the reason when it is absent."""
    found = shared_fer2013_dir()
    if found is None:
        pytest.skip("FER2013 not found: set FER2013_DIR or place ../shared/datasets/fer2013")
    return found
