"""A copied or moved project must not send its runs' files into the old folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pytest

from components.tracking.store import TrackingError, configure_tracking, ensure_experiment
from tests.tracking.conftest import tracking_env


def test_a_copied_store_is_refused_with_the_way_out(tmp_path: Path) -> None:
    original = tmp_path / "project"
    original.mkdir()
    with tracking_env(f"sqlite:///{original / 'mlflow.db'}", original):
        experiment_id = ensure_experiment("ferops/image/synthetic")
        with mlflow.start_run(experiment_id=experiment_id):
            mlflow.log_text("kept", "note.txt")
        assert configure_tracking()  # the original folder is fine
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    with tracking_env(f"sqlite:///{copy / 'mlflow.db'}", copy), \
            pytest.raises(TrackingError) as refused:
        configure_tracking()
    line = str(refused.value)
    assert len(line.splitlines()) == 1
    assert str(original / "mlartifacts") in line and str(copy / "mlartifacts") in line
    assert "moved or copied" in line and "MLFLOW_TRACKING_URI" in line
    # The way out the message names: a fresh store in the copy works.
    (copy / "mlflow.db").rename(copy / "mlflow.db.old")
    shutil.rmtree(copy / "mlartifacts")
    with tracking_env(f"sqlite:///{copy / 'mlflow.db'}", copy):
        ensure_experiment("ferops/image/synthetic")
        assert configure_tracking()
        location = mlflow.get_experiment_by_name("ferops/image/synthetic").artifact_location
    assert location == (copy / "mlartifacts").as_uri()
