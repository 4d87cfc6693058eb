"""A new local store appears whole: built aside, then linked into place."""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow import MlflowClient

from components.tracking.store import configure_tracking, create_sqlite_store


def test_a_missing_store_is_created_complete_and_leaves_no_scratch(tmp_path: Path,
                                                                    monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # A dead process's half-built scratch file must not get in the way.
    (tmp_path / f".mlflow.db.{999999}.tmp").write_bytes(b"half a schema")
    try:
        uri = configure_tracking(tmp_path)
        assert uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
        client = MlflowClient(uri)
        experiment = client.create_experiment("ferops/check")
        assert client.get_experiment(experiment).name == "ferops/check"
        assert client.search_registered_models() == []  # the registry tables exist too
    finally:
        mlflow.set_tracking_uri(None)
    assert sorted(p.name for p in tmp_path.glob(".mlflow.db.*")) == [".mlflow.db.999999.tmp"]


def test_an_existing_store_is_left_alone(tmp_path: Path) -> None:
    database = tmp_path / "mlflow.db"
    database.write_bytes(b"not touched")
    create_sqlite_store(f"sqlite:///{database}")
    assert database.read_bytes() == b"not touched"
