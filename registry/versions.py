"""Reading the registry: versions of a task's model, their aliases, and the gate's view.

Aliases replace the deprecated registry stages (MLflow 3 keeps stages only for backward
compatibility): ``candidate`` newest registered, ``staging`` passed the gate, ``champion``
in production, ``previous-champion`` the rollback target. Retired versions are tagged,
never deleted.
"""

from __future__ import annotations

import math
import re

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from components.errors import DataError
from components.tracking.store import TrackingError
from registry.gate import VersionScore
from registry.lock import is_lock

CANDIDATE = "candidate"
STAGING = "staging"
CHAMPION = "champion"
PREVIOUS = "previous-champion"
ALIASES: tuple[str, ...] = (CANDIDATE, STAGING, CHAMPION, PREVIOUS)

RETIRED_TAG = "retired"
ROLLED_BACK_TAG = "rolled_back"
# Set on versions the gate refused against a champion (its version number): they are not
# judged again against that champion, so re-running promote with nothing new is "unchanged".
REFUSED_AGAINST_TAG = "gate.refused_against"
# Beside it, why (the failed checks, in the gate's words), so a results file or the MLflow
# UI can say why a better-scoring model stayed a candidate without re-running the gate.
REFUSAL_TAG = "gate.refusal"
REFUSAL_TAG_CHARS = 4000  # MLflow model version tags hold at most 5,000 characters
DIGEST_PREFIX = "digest."  # digest.<split>: the fingerprint of each test split scored
RECALL_PREFIX = "recall."
NAME_SAFE = re.compile(r"^[\w.\-]+$")


def list_versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    """Every version of registered model ``name``, oldest first (empty when it is absent).

    Raises:
        TrackingError: the store cannot be queried.
    """
    _check_name(name)
    try:
        found = client.search_model_versions(f"name = '{name}'")
    except MlflowException as exc:
        raise TrackingError(f"registry: cannot list versions of {name} ({_short(exc)})") from exc
    return sorted(found, key=lambda mv: int(mv.version))


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version holding ``alias`` on ``name``, or None when the alias is not set.

    Raises:
        TrackingError: the store failed for a reason other than a missing alias.
    """
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            return None
        raise TrackingError(f"registry: cannot read alias {name}@{alias} ({_short(exc)})") from exc


def aliases_of(client: MlflowClient, name: str) -> dict[str, str]:
    """Alias -> version number for ``name`` (only aliases that are set)."""
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        raise TrackingError(f"registry: cannot read {name} ({_short(exc)})") from exc
    return {alias: str(version) for alias, version in (model.aliases or {}).items()}


def registered_tasks(client: MlflowClient, prefix: str) -> list[str]:
    """Tasks that have a registered model ``<prefix>-<task>`` (lock entries excluded)."""
    try:
        models = client.search_registered_models(filter_string=f"name LIKE '{prefix}-%'")
    except MlflowException as exc:
        raise TrackingError(f"registry: cannot list registered models ({_short(exc)})") from exc
    return sorted(m.name[len(prefix) + 1:] for m in models if not is_lock(m.name))


def version_score(mv: ModelVersion) -> VersionScore:
    """The gate's view of a version, read from the tags registration wrote."""
    tags = mv.tags or {}
    return VersionScore(
        version=str(mv.version),
        arch=tags.get("architecture", "?"),
        run_id=tags.get("run_id", mv.run_id or ""),
        test_digest=tags.get("test_digest", ""),
        digests={k[len(DIGEST_PREFIX):]: v for k, v in tags.items()
                 if k.startswith(DIGEST_PREFIX)},
        metrics={k: v for k, v in _floats(tags).items()
                 if k.startswith("test_") and k != "test_digest"},
        recall={k[len(RECALL_PREFIX):]: v for k, v in _floats(tags).items()
                if k.startswith(RECALL_PREFIX)},
        latency_ms=_floats(tags).get("latency_ms"),
        retired=RETIRED_TAG in tags,
        rolled_back=ROLLED_BACK_TAG in tags,
        refused_against=tags.get(REFUSED_AGAINST_TAG),
        refusal=tags.get(REFUSAL_TAG),
    )


def _floats(tags: dict[str, str]) -> dict[str, float]:
    values = {}
    for key, text in tags.items():
        try:
            value = float(text)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            values[key] = value
    return values


def _check_name(name: str) -> None:
    # Names go into filter strings; anything outside this set could break the quoting.
    if not NAME_SAFE.match(name):
        raise DataError(f"registered model name {name!r}: use letters, digits, . _ - only")


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__
