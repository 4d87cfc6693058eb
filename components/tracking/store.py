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
# Set by DVC for stage commands: the repository root, the original one even when an
# experiment runs in a temporary copy (dvc/repo/experiments/queue/base.py, DVC 3.x).
DVC_ROOT_ENV = "DVC_ROOT"
# Where DVC puts the repository copies of ``--temp`` / ``--queue`` experiments.
EXP_COPY_PARTS: tuple[str, ...] = (".dvc", "tmp", "exps")
STORE_FILE = "mlflow.db"
ARTIFACT_DIR = "mlartifacts"
# The MLflow UI lays an experiment out for model training (runs table, charts) rather than
# GenAI traces when this tag says so.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"

# The record of where a training run's MLflow run and models are (the registry reads it to
# register the run). It names a run id that is new on every run, so it lives beside the run
# folders, not in them: artifacts/train/<arch> keeps the same bytes for the same params.
RECORDS_FOLDER = "tracking"


HOST_TAG, PID_TAG = "ferops.host", "ferops.pid"  # which process on which machine runs a run


def process_alive(pid: int) -> bool:
    """True when process ``pid`` exists on this machine and is not a zombie (one owned by
    another user counts as alive)."""
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return True
    return True


def close_dead_runs(experiment_id: str, filter_string: str = "") -> list[str]:
    """End as KILLED the RUNNING runs of ``experiment_id`` (matching ``filter_string``) whose
    process on this machine is gone: a process killed with SIGKILL never ends its MLflow run.
    Runs of other machines are left alone. Returns the run ids closed."""
    import socket

    from mlflow import MlflowClient

    client = MlflowClient()
    host = socket.gethostname()
    running = " and ".join(filter(None, [filter_string, "attributes.status = 'RUNNING'"]))
    closed = []
    for run in client.search_runs([experiment_id], running):
        pid = str(run.data.tags.get(PID_TAG, ""))
        if run.data.tags.get(HOST_TAG) == host and pid.isdigit() and not process_alive(int(pid)):
            client.set_terminated(run.info.run_id, status="KILLED")
            closed.append(run.info.run_id)
    return closed


def run_record_path(run_dir: Path) -> Path:
    """``artifacts/train/<arch>`` -> ``artifacts/tracking/train/<arch>.json`` (the folder of
    run folders is kept in the path, so two sets of run folders never share records)."""
    run_dir = Path(run_dir)
    return run_dir.parent.parent / RECORDS_FOLDER / run_dir.parent.name / f"{run_dir.name}.json"


def project_root() -> Path:
    """The project folder that owns the default store.

    In order: ``FEROPS_PROJECT_ROOT``; ``DVC_ROOT``, which DVC sets for every stage command
    and, in ``dvc exp run --temp`` / ``--queue`` runs, points at the original repository
    rather than the executor's copy; the checkout holding the working directory
    (:func:`checkout_root`), mapped from a DVC experiment copy under
    ``<project>/.dvc/tmp/exps/`` back to ``<project>`` (for a process started in a copy
    without DVC's environment); otherwise the working directory.

    Returns:
        An absolute path; the store is ``<it>/mlflow.db``.
    """
    if os.environ.get(PROJECT_ROOT_ENV):
        return Path(os.environ[PROJECT_ROOT_ENV]).resolve()
    dvc_root = os.environ.get(DVC_ROOT_ENV)
    if dvc_root and Path(dvc_root).is_dir():
        return exp_copy_origin(Path(dvc_root).resolve())
    return exp_copy_origin(checkout_root())


def checkout_root(start: Path | None = None) -> Path:
    """The nearest ancestor of ``start`` (default: the working directory) holding both
    ``dvc.yaml`` and ``.git``, or ``start`` itself when there is none.

    Inside a DVC experiment copy this is the copy (which has its own ``.git``): right for
    what the run reads (``data.dvc``, the commit), wrong for where it writes runs.
    """
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").exists() and (folder / ".git").exists():
            return folder
    return here


def lineage_root() -> Path:
    """Where a run reads its lineage (``data.dvc``, the git commit) from.

    The DVC experiment copy it runs in, when it runs in one: a queued experiment runs
    after the workspace may have moved on, so the copy, not the project, holds what it
    trains on. Everywhere else the project itself (:func:`project_root`).
    """
    checkout = checkout_root()
    return checkout if exp_copy_origin(checkout) != checkout else project_root()


def exp_copy_origin(path: Path) -> Path:
    """The project a DVC experiment copy was made from, or ``path`` when it is no copy.

    DVC 3 runs ``--temp`` experiments in ``<project>/.dvc/tmp/exps/standalone/<tmpdir>``
    and queued ones in ``<project>/.dvc/tmp/exps/celery/<tmpdir>``; both are deleted after
    the run, taking any store written there with them. The outermost such component wins.
    """
    parts = path.parts
    for i in range(1, len(parts) - len(EXP_COPY_PARTS) + 1):
        if parts[i:i + len(EXP_COPY_PARTS)] == EXP_COPY_PARTS:
            return Path(*parts[:i])
    return path


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
    """Point MLflow at ``MLFLOW_TRACKING_URI`` or the project's default store; return the URI.

    Raises:
        TrackingError: a local store whose artifacts live in another folder (a moved or
            copied project; see :func:`check_artifact_root`).
    """
    import mlflow

    uri = tracking_uri(root)
    check_artifact_root(uri)
    create_sqlite_store(uri)
    mlflow.set_tracking_uri(uri)
    return uri


def create_sqlite_store(uri: str) -> None:
    """Create a missing local sqlite store whole, or not at all.

    MLflow builds a new database with a long chain of schema migrations; a process killed
    in the middle (a stage SIGKILLed, found by the fault-injection test) leaves a
    half-migrated file on which every later command fails ("table ... already exists").
    The schema is built in a private temporary file and hard-linked into place, which is
    atomic and never replaces a store another process created meanwhile.
    """
    database = sqlite_path(uri)
    if database is None or database.exists():
        return
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    database.parent.mkdir(parents=True, exist_ok=True)
    scratch = database.with_name(f".{database.name}.{os.getpid()}.tmp")
    scratch.unlink(missing_ok=True)
    try:
        store = SqlAlchemyStore(f"sqlite:///{scratch}", str(database.parent / ARTIFACT_DIR))
        store.engine.dispose()
        try:
            os.link(scratch, database)
        except FileExistsError:
            pass  # another process finished creating it first: use theirs
    finally:
        scratch.unlink(missing_ok=True)


def check_artifact_root(uri: str) -> None:
    """Refuse a local sqlite store whose ferops experiments keep artifacts elsewhere.

    MLflow writes each experiment's artifact location into the database once, as an
    absolute path. Copy or move a project folder and its ``mlflow.db`` still sends every new
    run's files to the *old* folder's ``mlartifacts/`` (or fails when it is gone). Only the
    project's own experiments (``ferops/...``) are checked; a server chooses for itself.

    Raises:
        TrackingError: one line naming both folders and the two ways out.
    """
    import sqlite3

    database = sqlite_path(uri)
    if database is None or not database.is_file():
        return
    expected = (database.parent / ARTIFACT_DIR).resolve()
    try:
        with sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT name, artifact_location FROM experiments "
                              "WHERE name LIKE 'ferops/%'").fetchall()
    except sqlite3.Error:
        return  # not (yet) an MLflow database: MLflow itself will say so
    for name, location in rows:
        path = Path(unquote(urlparse(location).path)) if location.startswith("file:") \
            else Path(location)
        if path.is_absolute() and path.resolve() != expected \
                and expected not in path.resolve().parents:
            raise TrackingError(
                f"{database}: experiment {name!r} keeps its artifacts in {path}, not in this "
                f"project's {expected} (the folder was moved or copied). Move mlflow.db and "
                f"{ARTIFACT_DIR}/ aside to start a fresh store here, or set "
                "MLFLOW_TRACKING_URI to the original project's store")


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
