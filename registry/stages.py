"""What ``ferops registry`` does: register the run folders, promote, roll back, report status.

The command line (``pipelines/registry.py``) parses and prints; the work lives here, beside
the gate and the alias moves it drives.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from components.errors import DataError
from components.tracking.store import check_reachable, configure_tracking
from registry.gate import VersionScore
from registry.lock import held_lock, lock_name, owner_is_dead
from registry.policy import GatePolicy, load_policy
from registry.promote import PromotionResult, promote
from registry.register import Registered, register_candidates
from registry.report import alias_line
from registry.versions import CHAMPION, aliases_of, list_versions, registered_tasks, version_score

log = logging.getLogger(__name__)


def registry_client() -> MlflowClient:
    """A client on ``MLFLOW_TRACKING_URI`` or the project store, checked to answer.

    Raises:
        TrackingError: a tracking server at the URI does not answer.
    """
    uri = configure_tracking()
    check_reachable(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def register_stage(params: dict[str, Any], train_dir: Path, data_dir: Path | None,
                   client: MlflowClient, tasks: tuple[str, ...] | None = None,
                   architectures: Sequence[str] | None = None) -> list[Registered]:
    """Register every run folder's model (see :func:`registry.register_candidates`)."""
    return register_candidates(train_dir, data_dir, client, load_policy(params), tasks=tasks,
                               architectures=architectures)


def params_architectures(params: dict[str, Any]) -> list[str]:
    """``train.architectures`` of the params: the run folders the pipeline owns now.

    Raises:
        DataError: the params have no such list.
    """
    archs = (params.get("train") or {}).get("architectures")
    if not isinstance(archs, list) or not archs:
        raise DataError("--archs-from-params: params have no train.architectures list")
    return [str(a) for a in archs]


def promote_stage(
    params: dict[str, Any], client: MlflowClient, *, task: str | None = None,
    version: str | None = None, dry_run: bool = False, train_dir: Path | None = None,
    data_dir: Path | None = None, architectures: Sequence[str] | None = None,
    rejudge: bool = False,
) -> list[PromotionResult]:
    """Promote one task, or every task with registered candidates; register first when
    ``train_dir`` is given.

    Raises:
        DataError: no task has registered versions, or ``version`` without ``task``.
    """
    policy = load_policy(params)
    if version is not None and task is None:
        raise DataError("--version needs --task (versions are numbered per task)")
    if train_dir is not None:
        register_candidates(train_dir, data_dir, client, policy,
                            tasks=(task,) if task else None, architectures=architectures)
    tasks = [task] if task else [
        t for t in registered_tasks(client, policy.model_prefix)
        if list_versions(client, policy.model_name(t))
    ]
    if not tasks:
        raise DataError(f"no registered models named {policy.model_prefix}-<task>; run "
                        "`ferops registry register` (or promote --register) first")
    return [promote(client, t, policy, dry_run, version=version, rejudge=rejudge)
            for t in tasks]


def promote_exit_code(results: list[PromotionResult], refused_ok: bool = False) -> int:
    """3 when every task was refused (and refusals are not ok), else 0."""
    if results and not refused_ok and all(r.exit_code == 3 for r in results):
        return 3
    return 0


def _refused(score: VersionScore, champion: str | None) -> bool:
    """Refused against the current champion: the gate weighs it again only when the
    champion changes, so a refusal against an earlier champion no longer holds."""
    return champion is not None and score.refused_against == champion


def _state(score: VersionScore, champion: str | None) -> str:
    """A version's state column: rolled back, retired, or refused against the champion."""
    if score.rolled_back:
        return "rolled back"
    if score.retired:
        return "retired"
    return f"refused vs v{champion}" if _refused(score, champion) else ""


def status_report(client: MlflowClient, policy: GatePolicy, task: str | None = None) -> str:
    """Markdown: per task, the aliases and a table of versions with their scores."""
    tasks = [task] if task else [
        t for t in registered_tasks(client, policy.model_prefix)
        if list_versions(client, policy.model_name(t))
    ]
    if not tasks:
        return f"No registered models named {policy.model_prefix}-<task>.\n"
    metric = policy.primary_metric
    parts = []
    for name_task in tasks:
        name = policy.model_name(name_task)
        versions = list_versions(client, name)
        if not versions:
            raise DataError(f"{name}: no registered versions")
        aliases = aliases_of(client, name)
        by_version: dict[str, list[str]] = {}
        for alias, number in aliases.items():
            by_version.setdefault(number, []).append(alias)
        lines = [f"## {name}", "", alias_line(aliases), ""]
        held = held_lock(client, name)
        if held is not None:
            owner, age_s = held
            dead = " (its process is gone: the next promotion breaks it)" \
                if owner_is_dead(owner) else ""
            lines += [f"{lock_name(name)} held by {owner} for {age_s:.0f} s; stale after "
                      f"{policy.lock_ttl_s:.0f} s{dead}", ""]
        lines += [f"| version | architecture | {metric} | aliases | state |", "|---" * 5 + "|"]
        champion = aliases.get(CHAMPION)
        refusals = []
        for mv in versions:
            score = version_score(mv)
            state = _state(score, champion)
            if _refused(score, champion) and score.refusal:
                refusals.append(f"- v{mv.version}: {score.refusal}")
            value = score.score(metric)
            lines.append(f"| v{mv.version} | {score.arch} | "
                         f"{f'{value:.4f}' if value is not None else 'n/a'} | "
                         f"{', '.join(sorted(by_version.get(str(mv.version), [])))} | {state} |")
        if refusals:
            lines += ["", "Why the gate refused:", *refusals]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)
