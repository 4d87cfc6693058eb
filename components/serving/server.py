"""Local HTTP servers started and stopped as a unit: ``mlflow models serve``, ``mlflow server``.

The load benchmark and the tests start real servers on 127.0.0.1 and must never leave one
behind: each runs in its own session (``uvicorn`` and its workers are children of the
``mlflow`` process), is awaited on ``/health``, and its whole process group is stopped
afterwards, SIGTERM first, SIGKILL for what lingers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCALHOST = "127.0.0.1"
START_TIMEOUT_S = 180.0
LOG_TAIL_CHARS = 3000


class ServerDidNotStart(RuntimeError):
    """The server exited or never answered ``/health``; the message ends with its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def model_server_command(model: str, port: int, workers: int = 1) -> list[str]:
    """``mlflow models serve`` of ``model`` (a ``models:/`` or ``runs:/`` URI or a saved
    model folder) on 127.0.0.1, in this interpreter's environment (no conda/virtualenv)."""
    return [sys.executable, "-m", "mlflow", "models", "serve", "-m", model,
            "--env-manager", "local", "--host", LOCALHOST, "--port", str(port),
            "--workers", str(workers)]


def model_server_env() -> dict[str, str]:
    """What ``mlflow models serve`` needs on top of the caller's environment.

    MLflow starts ``uvicorn`` by name, so this interpreter's bin folder goes first on PATH;
    the artifact download bar would only fill the server's log.
    """
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {"PATH": path, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


@contextmanager
def running(command: list[str], port: int, log: Path, env: dict[str, str] | None = None,
            timeout_s: float = START_TIMEOUT_S) -> Iterator[tuple[str, int]]:
    """Start ``command`` (a server listening on ``port``) in its own session with output to
    ``log``; yield ``(url, pid)`` once ``/health`` answers; stop its whole group afterwards.

    Raises:
        ServerDidNotStart: it exited or did not answer within ``timeout_s``.
    """
    full_env = {**os.environ, **(env or {})}
    with Path(log).open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT,
                                   env=full_env, start_new_session=True)
    url = f"http://{LOCALHOST}:{port}"
    try:
        wait_healthy(url, process, Path(log), timeout_s)
        yield url, process.pid
    finally:
        stop_group(process)


def wait_healthy(url: str, process: subprocess.Popen, log: Path,
                 timeout_s: float = START_TIMEOUT_S) -> None:
    """Poll ``<url>/health`` until it answers 200.

    Raises:
        ServerDidNotStart: the process exited, or ``timeout_s`` passed; with the log's tail.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerDidNotStart(f"server exited with {process.returncode}:\n"
                                    f"{_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise ServerDidNotStart(f"{url}/health did not answer in {timeout_s:.0f} s:\n{_tail(log)}")


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever outlived the leader."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)  # workers that outlived the group leader
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-LOG_TAIL_CHARS:] if log.is_file() else "(no log)"
