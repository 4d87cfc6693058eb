"""Where MLflow runs are stored.

The default is an absolute sqlite store plus an artifact folder inside the project (both
gitignored). Absolute matters: ``dvc exp run`` executes stages in temporary copies of the
repo, and a relative URI would scatter their runs over those copies instead of one store the
MLflow UI shows. ``MLFLOW_TRACKING_URI`` switches to a server (or any other store).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from components.errors import FeropsError

PROJECT_ROOT_ENV = "FEROPS_PROJECT_ROOT"
STORE_FILE = "mlflow.db"
ARTIFACT_DIR = "mlartifacts"
# The MLflow UI lays an experiment out for model training (runs table, charts) rather than
# GenAI traces when this tag says so.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def project_root() -> Path:
    """The project folder that owns the default store.

    ``FEROPS_PROJECT_ROOT`` wins (DVC experiment copies set it to the original checkout via
    the environment); otherwise the nearest ancestor of the working directory holding
    ``dvc.yaml``; otherwise the working directory.
    """
    if os.environ.get(PROJECT_ROOT_ENV):
        return Path(os.environ[PROJECT_ROOT_ENV]).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").exists() and (folder / ".git").exists():
            return folder
    return here


def default_tracking_uri(root: Path | None = None) -> str:
    """``sqlite:////abs/path/mlflow.db`` under the project root."""
    root = (root or project_root()).resolve()
    return f"sqlite:///{(root / STORE_FILE).as_posix()}"


def default_artifact_location(root: Path | None = None) -> str:
    """Artifact folder used for experiments created in the default store."""
    root = (root or project_root()).resolve()
    return (root / ARTIFACT_DIR).as_uri()


class TrackingError(FeropsError):
    """The MLflow store cannot be reached or refused a write (wrong URI, server down)."""


def tracking_uri(root: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the project's default sqlite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(root)


def configure_tracking(root: Path | None = None) -> str:
    """Point MLflow at ``MLFLOW_TRACKING_URI`` or the project's default store; return the URI."""
    import mlflow

    uri = tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or None for any other kind of store."""
    if not uri.startswith("sqlite:"):
        return None
    return Path(unquote(urlparse(uri).path)).resolve()


def artifact_root_for(uri: str) -> str | None:
    """Where a local sqlite store keeps artifacts: ``mlartifacts/`` beside the database.

    For the default store that is ``<project>/mlartifacts``; a test's or user's own sqlite
    file gets its own folder instead of writing into the project. Servers choose for
    themselves (None).
    """
    database = sqlite_path(uri)
    if database is None:
        return None
    return (database.parent / ARTIFACT_DIR).as_uri()


def experiment_name(task: str, dataset: str) -> str:
    """One experiment per task and dataset, e.g. ``ferops/image/synthetic``."""
    return f"ferops/{task}/{dataset}"


def flatten_params(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested params into ``a.b.c`` keys with string values, as MLflow stores them."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{name}."))
        else:
            flat[name] = str(value)[:6000]
    return flat


def ensure_experiment(name: str) -> str:
    """Get or create experiment ``name`` and make it active; return its id.

    In a sqlite store, artifacts go to ``mlartifacts/`` beside the database (the project's
    folder for the default store) rather than MLflow's cwd-relative default, for the same
    reason the store path is absolute.

    Raises:
        TrackingError: the store cannot be reached (e.g. no server at the URI).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = configure_tracking()
    check_reachable(uri)
    try:
        found = mlflow.get_experiment_by_name(name)
        if found is not None:
            mlflow.set_experiment(experiment_id=found.experiment_id)
            return found.experiment_id
        experiment_id = mlflow.create_experiment(
            name, artifact_location=artifact_root_for(uri),
            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
        )
        mlflow.set_experiment(experiment_id=experiment_id)
    except (MlflowException, OSError) as exc:
        raise TrackingError(
            f"MLflow store {uri}: cannot open experiment {name!r} ({_first_line(exc)}); "
            "check MLFLOW_TRACKING_URI or set train.track: false"
        ) from exc
    return experiment_id


def check_reachable(uri: str, timeout: float = 10.0) -> None:
    """Fail fast when a tracking server does not answer ``/health``.

    MLflow's own client retries with exponential backoff for minutes before giving up; a
    one-shot probe turns a wrong URI or a stopped server into an immediate, clear error.
    Local stores need no probe.

    Raises:
        TrackingError: the server does not answer, or answers with an error status.
    """
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    health = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health, timeout=timeout) as response:
            if response.status != 200:
                raise TrackingError(f"MLflow server {uri}: /health answered {response.status}")
    except (urllib.error.URLError, OSError) as exc:
        raise TrackingError(
            f"MLflow server {uri} is unreachable ({exc}); start it or fix MLFLOW_TRACKING_URI"
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
