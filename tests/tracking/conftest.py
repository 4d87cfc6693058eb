"""Shared fixtures for the tracking tests: a trained study in a tmp sqlite store, servers."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from components.data.manifest import MANIFEST_SCHEMA, write_manifest
from components.data.version import MD5_KEY
from components.serving import server
from components.serving.server import free_port  # noqa: F401 - the tests' port helper
from components.tracking.store import run_record_path
from pipelines import train as train_module
from tests.synthetic_task import make_synthetic_task

ARCHS: tuple[str, ...] = ("baseline_cnn", "svm_fusion")
DVC_MD5 = "3f1e0c6b2a9d4e8f7a6b5c4d3e2f1a0b.dir"
PARAMS = {
    "ingest": {"source": "synthetic"},
    "train": {
        "track": True,
        "seed": 0, "epochs": 2, "batch_size": 16, "lr": 0.01, "progress": False,
        "overrides": {"svm_fusion": {"folds": 2, "epochs": 1}},
        "model_kwargs": {"svm_fusion": {}},
    },
}
# MLflow's GenAI job runner starts a dozen idle processes per server; the UI needs none.
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


@dataclass
class Workspace:
    """A project folder with preprocessed arrays and upstream stage outputs (ingest's summary
    names the raw data's data.dvc md5)."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "artifacts" / "preprocess"

    @property
    def task_dir(self) -> Path:
        return self.data / "image"

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def manifest(self) -> Path:
        return self.root / "artifacts" / "augment" / "manifest.parquet"

    def out(self, arch: str, name: str = "train") -> Path:
        return self.root / "artifacts" / name / arch

    def train(self, arch: str, name: str = "train") -> int:
        """Run the train stage the way dvc.yaml does (CLI entry point)."""
        return train_module.main([
            "--arch", arch, "--params", str(self.params), "--data", str(self.data),
            "--out", str(self.out(arch, name)), "--tune-dir", str(self.root / "tune"),
        ])

    def run_record(self, arch: str, name: str = "train") -> dict:
        return json.loads(run_record_path(self.out(arch, name)).read_text())


@dataclass
class Study:
    """The workspace plus the sqlite store its train runs were tracked in."""

    workspace: Workspace
    uri: str


def make_workspace(root: Path) -> Workspace:
    """Tiny learnable rgbd arrays plus what ingest/validate/augment would have left."""
    ws = Workspace(root)
    make_synthetic_task(ws.data, "rgbd", size=16, sizes={"train": 32, "val": 16, "test": 16},
                        occlusion=(25,))
    meta = json.loads((ws.task_dir / "meta.json").read_text())
    meta["params"] = {"size": 16, "stretch": "minmax", "frames": {"count": 4}}
    (ws.task_dir / "meta.json").write_text(json.dumps(meta))
    rows = []
    for split in ("train", "val", "test"):
        ids = np.load(ws.task_dir / split / "ids.npy")
        labels = np.load(ws.task_dir / split / "y.npy")
        for sample, label in zip(ids.tolist(), labels.tolist(), strict=True):
            rows.append({"id": sample, "source": "synthetic", "split": split,
                         "label": meta["classes"][label], "content_hash": f"h-{sample}"})
    frame = pd.DataFrame(rows).reindex(columns=list(MANIFEST_SCHEMA)).astype(MANIFEST_SCHEMA)
    write_manifest(frame, ws.manifest)
    (ws.manifest.parent / "report.json").write_text(json.dumps({"params": {"seed": 3}}))
    summary = root / "artifacts" / "validate" / "summary.md"
    summary.parent.mkdir(parents=True)
    summary.write_text("# Validation\n\nNo errors.\n")
    # what the ingest stage records: data.dvc's md5 in its summary
    ingest = root / "artifacts" / "ingest"
    ingest.mkdir(parents=True)
    (ingest / "summary.json").write_text(json.dumps({MD5_KEY: DVC_MD5}))
    ws.params.write_text(yaml.safe_dump(PARAMS))
    return ws


@contextmanager
def tracking_env(uri: str, root: Path, **extra: str) -> Iterator[None]:
    """Point MLflow and the project root at test locations, and undo it afterwards.

    ``mlflow.set_tracking_uri`` (called by the project) also writes ``MLFLOW_TRACKING_URI``
    into the environment; resetting it before the monkeypatch restores the variables keeps
    other tests on their own stores.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("FEROPS_PROJECT_ROOT", str(root))
        for key, value in extra.items():
            patch.setenv(key, value)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(None)


@pytest.fixture(scope="session")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    """baseline_cnn and svm_fusion trained and tracked in a tmp sqlite store (once)."""
    ws = make_workspace(tmp_path_factory.mktemp("study"))
    uri = f"sqlite:///{ws.root / 'mlflow.db'}"
    # One sample per second, so the few seconds of training yield system metrics.
    with tracking_env(uri, ws.root, MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL="1"):
        for arch in ARCHS:
            assert ws.train(arch) == 0
    return Study(ws, uri)


@pytest.fixture
def study_store(study: Study) -> Iterator[Study]:
    """The study with MLflow pointed at its store for the duration of one test."""
    with tracking_env(study.uri, study.workspace.root):
        mlflow.set_tracking_uri(study.uri)
        yield study


@contextmanager
def running(command: list[str], port: int, log: Path, env: dict[str, str] | None = None
            ) -> Iterator[str]:
    """Start a server process (own session), wait for /health, stop its whole group after."""
    with server.running(command, port, log, {**SERVER_ENV, **(env or {})}) as (url, _pid):
        yield url


def mlflow_server_command(root: Path, port: int, backend: str | None = None) -> list[str]:
    """``mlflow server`` on a sqlite store (or the ``backend`` database URL) with proxied
    artifacts under ``root``."""
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend or f"sqlite:///{root / 'server.db'}",
        "--artifacts-destination", str(root / "server-artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]
