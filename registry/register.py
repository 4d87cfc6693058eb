"""Registering trained runs as versions of their task's model.

Every architecture of a task (fusion, SVM, hierarchical, partition, baseline) becomes a
version of one registered model ``<prefix>-<task>``, so they compete for one champion.
The tags carry everything the gate judges by, so promotion never needs the run folders.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.tracking.store import TrackingError
from registry.candidates import Candidate, read_candidates
from registry.card import model_card, store_card
from registry.policy import GatePolicy
from registry.versions import CANDIDATE, DIGEST_PREFIX, RECALL_PREFIX, list_versions

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Registered:
    """One candidate's registered version; ``created`` is False when it already existed."""

    model_name: str
    version: str
    arch: str
    task: str
    run_id: str
    created: bool


def register_candidates(
    train_dir: Path, data_dir: Path | None, client: MlflowClient, policy: GatePolicy,
    *, tasks: tuple[str, ...] | None = None, architectures: Sequence[str] | None = None,
) -> list[Registered]:
    """Register every run folder under ``train_dir`` (of ``tasks``, or all) and point each
    task's ``candidate`` alias at its newest version.

    Idempotent: a run already registered (a version whose ``run_id`` tag matches) is not
    registered again.

    Returns:
        One entry per candidate, in run-folder order.

    Raises:
        DataError: a run folder is unreadable or lacks scores.
        TrackingError: the run is not in this store, or the store refused a write.
    """
    done = []
    for candidate in read_candidates(train_dir, data_dir, architectures):
        if tasks and candidate.task not in tasks:
            continue
        done.append(register_candidate(candidate, client, policy))
    for name in sorted({r.model_name for r in done}):
        newest = max(list_versions(client, name), key=lambda mv: int(mv.version))
        _call(client.set_registered_model_alias, name, CANDIDATE, newest.version)
    return done


def register_candidate(candidate: Candidate, client: MlflowClient,
                       policy: GatePolicy) -> Registered:
    """Register one candidate (or find its existing version) with tags and model card.

    Raises:
        TrackingError: the run is missing from the store or a registry call failed.
    """
    name = policy.model_name(candidate.task)
    for mv in list_versions(client, name):
        if (mv.tags or {}).get("run_id") == candidate.run_id:
            log.info("%s: run %s already is %s v%s", candidate.arch, candidate.run_id, name,
                     mv.version)
            return Registered(name, str(mv.version), candidate.arch, candidate.task,
                              candidate.run_id, created=False)
    tags = version_tags(candidate, client)
    with _tracking_uri(client.tracking_uri):
        try:
            mv = mlflow.register_model(candidate.model_uri, name, tags=tags)
        except MlflowException as exc:
            raise TrackingError(f"{candidate.run_dir}: cannot register {candidate.model_uri} "
                                f"as {name} ({_short(exc)})") from exc
    card = model_card(candidate, policy.class_recall_floor, f"models:/{name}/{mv.version}")
    store_card(client, name, str(mv.version), card)
    log.info("%s: registered as %s v%s", candidate.arch, name, mv.version)
    return Registered(name, str(mv.version), candidate.arch, candidate.task, candidate.run_id,
                      created=True)


def version_tags(candidate: Candidate, client: MlflowClient) -> dict[str, str]:
    """The tags of a new version: identity, lineage, every test score, per-class recall.

    Raises:
        TrackingError: the candidate's run is not in the store ``client`` points at.
    """
    try:
        run = client.get_run(candidate.run_id)
    except MlflowException as exc:
        recorded = candidate.record.get("tracking_uri", "unknown")
        raise TrackingError(
            f"{candidate.run_dir}: run {candidate.run_id} not found in {client.tracking_uri} "
            f"(it was tracked in {recorded}); set MLFLOW_TRACKING_URI"
        ) from exc
    tags = {
        "architecture": candidate.arch,
        "task": candidate.task,
        "dataset": candidate.dataset,
        "test_digest": candidate.test_digest,
        "run_id": candidate.run_id,
        "params_hash": params_hash(run.data.params),
        "git_commit": run.data.tags.get("git_commit", "unknown"),
    }
    tags.update({f"{DIGEST_PREFIX}{split}": digest
                 for split, digest in candidate.split_digests.items()})
    tags.update({key: repr(value) for key, value in candidate.metrics.items()})
    tags.update({f"{RECALL_PREFIX}{cls}": repr(value) for cls, value in candidate.recall.items()})
    if candidate.n_test is not None:
        tags["n_test"] = str(candidate.n_test)
    if candidate.latency_ms is not None:
        tags["latency_ms"] = repr(candidate.latency_ms)
    return tags


def params_hash(params: dict[str, str]) -> str:
    """sha256 of a run's params (sorted), so identical configurations are recognisable."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


@contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    # mlflow.register_model resolves runs:/ URIs through the global client; point it at the
    # same store as ``client`` for the call only.
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


def _call(method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one client call, turning store failures into a one-line TrackingError."""
    try:
        return method(*args, **kwargs)
    except MlflowException as exc:
        raise TrackingError(f"registry: {method.__name__} failed ({_short(exc)})") from exc


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__

