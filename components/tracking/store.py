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

PROJECT_ROOT_ENV = "FEROPS_PROJECT_ROOT"
STORE_FILE = "mlflow.db"
ARTIFACT_DIR = "mlartifacts"


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


def configure_tracking(root: Path | None = None) -> str:
    """Point MLflow at ``MLFLOW_TRACKING_URI`` or the project's default store; return the URI."""
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    return uri


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

    In the default sqlite store, artifacts go to the project's ``mlartifacts/`` folder rather
    than MLflow's cwd-relative default, for the same reason the store path is absolute.
    """
    import mlflow

    configure_tracking()
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        mlflow.set_experiment(experiment_id=found.experiment_id)
        return found.experiment_id
    location = None
    if mlflow.get_tracking_uri().startswith("sqlite:"):
        location = default_artifact_location()
    experiment_id = mlflow.create_experiment(name, artifact_location=location)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id
