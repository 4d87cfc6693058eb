"""``ferops ui`` builds the right ``mlflow ui`` command and refuses what it cannot serve."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.errors import ConfigError
from pipelines import ui


def test_ui_serves_a_sqlite_store_with_artifacts_beside_it(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = ui.ui_command(uri, "127.0.0.1", 5123)
    assert command[1:4] == ["-m", "mlflow", "ui"]
    assert command[command.index("--backend-store-uri") + 1] == uri
    artifacts = command[command.index("--default-artifact-root") + 1]
    assert artifacts == (tmp_path / "mlartifacts").as_uri()
    assert command[command.index("--port") + 1] == "5123"
    assert command[command.index("--host") + 1] == "127.0.0.1"


def test_ui_refuses_a_server_uri_and_a_bad_port(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match="tracking server"):
        ui.ui_command("http://127.0.0.1:5000")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.example.org")
    assert ui.main(["--port", "5001"]) == 2
    assert "open it in a browser" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--port"):
        ui.ui_command("sqlite:////tmp/x.db", port=70000)
