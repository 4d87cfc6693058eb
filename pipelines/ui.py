"""``ferops ui`` / ``make ui``: the MLflow UI over the project's tracking store.

    python -m pipelines.ui [--host 127.0.0.1] [--port 5000] [--workers 1]

Serves the store the training runs went to: ``MLFLOW_TRACKING_URI`` when it names a local
store (sqlite or a folder), else ``<project>/mlflow.db`` with artifacts in
``<project>/mlartifacts``. Open ``http://<host>:<port>`` and pick an experiment
(``ferops/<task>/<dataset>``) to compare its runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from components.errors import ConfigError
from components.tracking.store import ARTIFACT_DIR, artifact_root_for, sqlite_path, tracking_uri
from pipelines._common import run_cli

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000


def ui_command(uri: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
               workers: int = 1) -> list[str]:
    """The ``mlflow ui`` command line serving store ``uri``.

    Raises:
        ConfigError: ``uri`` is a tracking server (it has its own UI), or the port is invalid.
    """
    if uri.startswith(("http://", "https://", "databricks")):
        raise ConfigError(
            f"MLFLOW_TRACKING_URI={uri} is a tracking server: open it in a browser instead"
        )
    if not 0 < port < 65536:
        raise ConfigError(f"--port: {port} is not a TCP port")
    if workers < 1:
        raise ConfigError(f"--workers: must be >= 1, got {workers}")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    artifacts = artifact_root_for(uri)
    if artifacts is None and uri.startswith("file:"):
        artifacts = uri.rstrip("/") + f"/{ARTIFACT_DIR}"
    if artifacts is not None:
        command += ["--default-artifact-root", artifacts]
    command += ["--host", host, "--port", str(port), "--workers", str(workers)]
    return command


def serve(uri: str, host: str, port: int, workers: int = 1) -> int:
    """Replace this process with the MLflow UI (runs until interrupted; does not return).

    Exec rather than a child process: Ctrl+C and a supervisor's SIGTERM then reach the
    server itself, so stopping ``ferops ui`` never leaves an orphaned server on the port.

    Raises:
        ConfigError: see :func:`ui_command`.
    """
    command = ui_command(uri, host, port, workers)
    database = sqlite_path(uri)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    # The server's job runner serves GenAI evaluation jobs: a dozen idle processes here.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    print(f"MLflow UI for {uri} at http://{host}:{port} (Ctrl+C stops it)", flush=True)
    os.execv(command[0], command)
    return 0  # not reached: execv only returns by raising


def _body(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=DEFAULT_HOST, help="bind address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="default: %(default)s")
    parser.add_argument("--workers", type=int, default=1, help="server workers (default: 1)")
    parser.add_argument("--root", type=Path, default=None,
                        help="project folder whose mlflow.db to serve (default: this project)")
    args = parser.parse_args(argv)
    return serve(tracking_uri(args.root), args.host, args.port, args.workers)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m pipelines.ui`` and ``ferops ui``."""
    return run_cli(_body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
