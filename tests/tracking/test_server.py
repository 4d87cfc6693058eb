"""A real ``mlflow server`` process receives a training run; its model registers and loads."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import torch
from mlflow import MlflowClient

from components.models import load_trained
from components.training.data import load_split
from tests.tracking.conftest import (
    Study,
    free_port,
    mlflow_server_command,
    running,
    tracking_env,
)


def test_training_run_logged_to_a_server_registers_and_loads_back(
    study: Study, tmp_path: Path
) -> None:
    ws = study.workspace
    port = free_port()
    with running(mlflow_server_command(tmp_path, port), port, tmp_path / "server.log") as url:
        with tracking_env(url, ws.root):
            assert ws.train("baseline_cnn", name="train_server") == 0
            record = ws.run_record("baseline_cnn", name="train_server")
            assert record["tracking_uri"] == url
            client = MlflowClient(url)
            run = client.get_run(record["run_id"])
            assert run.info.status == "FINISHED" and run.data.metrics["test_uar"] >= 0.0
            assert any(a.path == "confusion_test.png"
                       for a in client.list_artifacts(record["run_id"]))

            version = mlflow.register_model(record["model_uri"], "ferops-baseline_cnn")
            assert version.version == "1"
            loaded = mlflow.pyfunc.load_model("models:/ferops-baseline_cnn/1")
            spec, classifier = load_trained(ws.out("baseline_cnn", name="train_server"))
            batch = load_split(ws.task_dir, "test", spec.inputs).rows(slice(0, 6))
            with torch.no_grad():
                expected = classifier.network()(torch.from_numpy(batch)).numpy()
            np.testing.assert_allclose(loaded.predict(batch), expected, rtol=1e-4, atol=1e-5)
    # The server stored the artifacts itself (proxied), not the client's filesystem.
    assert list((tmp_path / "server-artifacts").rglob("MLmodel"))
    assert list((tmp_path / "server-artifacts").rglob("learning_curves.png"))
