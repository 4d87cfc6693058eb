"""A real ``mlflow server`` for the registry tests, and run folders like the train stage writes.

Each test takes its own model prefix, so tests share the server (fast) without seeing each
other's registered models.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from components.models import ModelSpec
from components.serving.settings import SETTINGS_FILE, ServingSettings, build_settings
from components.tracking.store import run_record_path
from tests.tracking.conftest import free_port, mlflow_server_command, running, tracking_env

CLASSES: tuple[str, ...] = ("anger", "happiness", "neutral", "surprise")
DIGEST_A = "a" * 64
DIGEST_B = "b" * 64


@dataclass
class Server:
    url: str
    root: Path


@dataclass
class Project:
    """A project folder: run folders under ``train``, a params file, one model prefix."""

    server: Server
    root: Path
    prefix: str
    policy: dict

    @property
    def train(self) -> Path:
        return self.root / "artifacts" / "train"

    @property
    def data(self) -> Path:
        return self.root / "artifacts" / "preprocess"

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.server.url, registry_uri=self.server.url)

    def name(self, task: str = "image") -> str:
        return f"{self.prefix}-{task}"

    def write_params(self, **overrides: object) -> None:
        self.policy = {**self.policy, **overrides}
        self.params.write_text(yaml.safe_dump({"registry": self.policy}))

    def env(self) -> dict[str, str]:
        return {"MLFLOW_TRACKING_URI": self.server.url, "FEROPS_PROJECT_ROOT": str(self.root)}

    def candidate(self, arch: str, uar: float, *, task: str = "image",
                  digest: str | None = DIGEST_A, recall: dict[str, float] | None = None,
                  latency_ms: float | None = None, folder: str | None = None) -> Path:
        """Log a tiny real model in a run on the server and write its run folder."""
        recall = recall or dict.fromkeys(CLASSES, uar)
        rng = np.random.default_rng(len(arch))
        x, y = rng.normal(size=(24, 3)), np.arange(24) % len(CLASSES)
        model = LogisticRegression(max_iter=50).fit(x, y)
        with tracking_env(self.server.url, self.root):
            mlflow.set_tracking_uri(self.server.url)
            mlflow.set_experiment(f"{self.prefix}/{task}")
            with mlflow.start_run(tags={"git_commit": "0123abc", "architecture": arch}) as run:
                mlflow.log_params({"arch": arch, "lr": 0.01, "uar": uar})
                # Explicit requirements skip MLflow's slow import-capturing inference.
                info = mlflow.sklearn.log_model(model, name="model",
                                                pip_requirements=["scikit-learn"])
        run_dir = self.train / (folder or arch)
        run_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "run_id": run.info.run_id, "experiment_name": f"{self.prefix}/{task}",
            "tracking_uri": self.server.url, "model_uri": f"runs:/{run.info.run_id}/model",
            "logged_model_uri": info.model_uri, "model_id": info.model_id,
            "arch": arch, "task": task, "dataset": "synthetic",
        }
        if digest is not None:
            record["test_digest"] = digest
        if latency_ms is not None:
            record["latency_ms"] = latency_ms
        run_record_path(run_dir).parent.mkdir(parents=True, exist_ok=True)
        run_record_path(run_dir).write_text(json.dumps(record))
        metrics = {"test_accuracy": uar, "test_uar": uar, "test_macro_f1": uar - 0.01,
                   "test_occ25_accuracy": uar / 2, "best_epoch": 3, "stopped_early": False}
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
        per_class = {"classes": list(recall),
                     "splits": {"test": {"per_class_recall": recall, "n": 48}}}
        (run_dir / "per_class.json").write_text(json.dumps(per_class))
        contract_of(arch, task).write(run_dir / SETTINGS_FILE)  # as the train stage leaves it
        return run_dir


def contract_of(arch: str, task: str) -> ServingSettings:
    """The serving settings a model of ``task`` carries (real settings, default preprocess)."""
    inputs = {"image": ("color",), "rgbd": ("depth", "color"), "video": ("frames",)}[task]
    channels = {"image": 3, "rgbd": 4, "video": 3}[task]
    spec = ModelSpec(arch, len(CLASSES), channels, inputs, task, list(CLASSES))
    return build_settings(spec, 48, 3, {})


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real ``mlflow server`` on 127.0.0.1 shared by every registry test (each test
    works under its own model prefix, so sharing is safe and saves a start per module)."""
    root = tmp_path_factory.mktemp("registry-server")
    port = free_port()
    with running(mlflow_server_command(root, port), port, root / "server.log") as url:
        yield Server(url, root)


@pytest.fixture
def project(server: Server, tmp_path: Path) -> Iterator[Project]:
    """A fresh project with its own model prefix, MLflow pointed at the server."""
    proj = Project(server, tmp_path, f"t{uuid.uuid4().hex[:8]}",
                   {"model_prefix": "", "min_delta": 0.005, "class_recall_floor": 0.1})
    proj.write_params(model_prefix=proj.prefix)
    with tracking_env(server.url, tmp_path):
        yield proj
