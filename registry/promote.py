"""Promotion and rollback: moving the aliases, under the promotion lock.

The decision is taken on a snapshot of the registry, then re-checked inside the lock: if
the champion moved meanwhile (a concurrent promotion won), this one reports that it lost
instead of overwriting, so ``champion`` and ``previous-champion`` always name two different
versions and ``previous-champion`` is the champion the winner replaced.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.errors import DataError
from components.tracking.store import TrackingError
from registry.gate import PROMOTE, REFUSE, Decision, Evidence, VersionScore, decide
from registry.lock import PromotionLock
from registry.policy import GatePolicy
from registry.report import promotion_report, rollback_report
from registry.significance import Predictions
from registry.versions import (
    CHAMPION,
    PREVIOUS,
    REFUSAL_TAG,
    REFUSAL_TAG_CHARS,
    REFUSED_AGAINST_TAG,
    RETIRED_TAG,
    ROLLED_BACK_TAG,
    STAGING,
    alias_version,
    aliases_of,
    list_versions,
    version_score,
)

log = logging.getLogger(__name__)

# Where the train stage's per-sample test predictions sit among a run's artifacts.
PREDICTIONS_ARTIFACT = "reports/predictions.json"

PROMOTED = "promoted"
REFUSED = "refused"
UNCHANGED = "unchanged"
EXIT_CODES: dict[str, int] = {PROMOTED: 0, UNCHANGED: 0, REFUSED: 3}


@dataclass(frozen=True)
class PromotionResult:
    """The outcome of one promotion attempt for one task."""

    task: str
    model_name: str
    status: str                      # promoted | refused | unchanged
    decision: Decision
    report: str
    dry_run: bool = False
    lost_race: bool = False
    aliases: dict[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 promoted or unchanged, 3 refused by the gate (or beaten by a concurrent run)."""
        return EXIT_CODES[self.status]


@dataclass(frozen=True)
class RollbackResult:
    """The outcome of a rollback: which version is champion again."""

    task: str
    model_name: str
    restored: str
    rolled_back: str | None
    report: str
    aliases: dict[str, str] = field(default_factory=dict)


def promote(
    client: MlflowClient, task: str, policy: GatePolicy, dry_run: bool = False, *,
    version: str | None = None, lock_wait_s: float | None = None, rejudge: bool = False,
) -> PromotionResult:
    """Judge the task's challenger and, when it passes, make it champion.

    Aliases move in this order: ``staging`` -> challenger, the outgoing
    ``previous-champion`` removed, ``champion`` -> challenger, ``previous-champion`` -> old
    champion, so every intermediate state is valid; the old champion is tagged ``retired``
    (never deleted). A dry run judges and reports without writing anything.

    Args:
        version: judge this version instead of the best candidate.
        rejudge: judge again the versions already refused against this champion (refusals
            are otherwise sticky until the champion changes, e.g. after a loosened policy).
        lock_wait_s: how long to wait for a concurrent promotion (default: the lock TTL).

    Raises:
        DataError: the task has no registered versions, or ``version`` is not one of them.
        TrackingError: the store failed.
        LockBusy: the lock stayed held by a live promotion for ``lock_wait_s``.
    """
    name = policy.model_name(task)
    decision = _judge(client, name, policy, version, rejudge)
    status = {PROMOTE: PROMOTED, REFUSE: REFUSED}.get(decision.verdict, UNCHANGED)
    if status == REFUSED and not dry_run and version is None:
        _mark_refused(client, name, decision)
    if dry_run or status != PROMOTED:
        return _result(client, task, name, status, decision, policy, dry_run=dry_run)
    challenger = decision.challenger
    assert challenger is not None  # PROMOTE always names one
    before = decision.champion.version if decision.champion else None
    with PromotionLock(client, name, ttl_s=policy.lock_ttl_s, wait_s=lock_wait_s):
        current = alias_version(client, name, CHAMPION)
        now = str(current.version) if current else None
        if now == challenger.version:
            return _result(client, task, name, UNCHANGED, decision, policy,
                           note=f"v{now} became champion meanwhile (a concurrent promotion)")
        if now != before:
            return _lost_race(client, task, name, decision, policy, before, now)
        _move_aliases(client, name, challenger, decision.champion)
    log.info("%s: v%s (%s) is champion", name, challenger.version, challenger.arch)
    return _result(client, task, name, PROMOTED, decision, policy)


def rollback(client: MlflowClient, task: str, policy: GatePolicy) -> RollbackResult:
    """Make ``previous-champion`` the champion again and tag the demoted one ``rolled_back``.

    The restored version loses its ``retired`` tag; ``previous-champion`` is cleared (the
    history is one deep), and ``staging`` is cleared when it named the demoted version.

    Raises:
        DataError: there is no previous champion to return to.
        TrackingError: the store failed.
    """
    name = policy.model_name(task)
    with PromotionLock(client, name, ttl_s=policy.lock_ttl_s):
        previous = alias_version(client, name, PREVIOUS)
        if previous is None:
            raise DataError(f"{name}: no previous-champion alias, nothing to roll back to")
        current = alias_version(client, name, CHAMPION)
        demoted = str(current.version) if current else None
        restored = str(previous.version)
        _write(client.set_registered_model_alias, name, CHAMPION, restored)
        _write(client.delete_registered_model_alias, name, PREVIOUS)
        if RETIRED_TAG in (previous.tags or {}):
            _write(client.delete_model_version_tag, name, restored, RETIRED_TAG)
        if demoted is not None and demoted != restored:
            _write(client.set_model_version_tag, name, demoted, ROLLED_BACK_TAG, _now())
            staging = alias_version(client, name, STAGING)
            if staging is not None and str(staging.version) == demoted:
                _write(client.delete_registered_model_alias, name, STAGING)
    aliases = aliases_of(client, name)
    log.info("%s: rolled back from %s to v%s", name, _v(demoted), restored)
    return RollbackResult(task, name, restored, demoted,
                          rollback_report(name, restored, demoted, aliases), aliases)


def _lost_race(client: MlflowClient, task: str, name: str, decision: Decision,
               policy: GatePolicy, before: str | None, now: str | None) -> PromotionResult:
    """A concurrent promotion moved the champion while this one decided. When the winner
    scores at least as well as this challenger, the outcome is the one wanted (exit 0);
    otherwise this challenger may still be better: exit 3 and say to re-run."""
    metric = policy.primary_metric
    challenger = decision.challenger
    winner = _find([version_score(mv) for mv in list_versions(client, name)], str(now)) \
        if now else None
    mine = challenger.score(metric) if challenger else None
    theirs = winner.score(metric) if winner else None
    lost = f"lost the race: champion moved from {_v(before)} to {_v(now)} while this " \
           "promotion was deciding"
    if mine is not None and theirs is not None and theirs >= mine:
        return _result(client, task, name, UNCHANGED, decision, policy, lost_race=True,
                       note=f"{lost}; the winner's {metric} {theirs:.4f} is at least this "
                            f"challenger's {mine:.4f}, so nothing is left to do")
    return _result(client, task, name, REFUSED, decision, policy, lost_race=True,
                   note=f"{lost}; re-run to judge v{challenger.version if challenger else '?'} "
                        "against it")


def _judge(client: MlflowClient, name: str, policy: GatePolicy,
           version: str | None, rejudge: bool = False) -> Decision:
    versions = list_versions(client, name)
    if not versions:
        raise DataError(f"{name}: no registered versions (run `ferops registry register`)")
    scores = [version_score(mv) for mv in versions]
    if version is not None and str(version) not in {s.version for s in scores}:
        raise DataError(f"{name}: no version {version} (versions: "
                        f"{', '.join(s.version for s in scores)})")
    champion_mv = alias_version(client, name, CHAMPION)
    champion = _find(scores, str(champion_mv.version)) if champion_mv else None
    return decide(scores, champion, policy, version=version, rejudge=rejudge,
                  evidence=logged_predictions(client))


def logged_predictions(client: MlflowClient) -> Evidence:
    """Per-sample test predictions of a version, read from its training run's
    ``reports/predictions.json`` artifact (None when the run logged none)."""
    cache: dict[str, dict[str, Any] | None] = {}

    def fetch(version: VersionScore, split: str) -> Predictions | None:
        if version.run_id not in cache:
            cache[version.run_id] = _download_predictions(client, version.run_id)
        entry = (cache[version.run_id] or {}).get(split)
        if not entry:
            return None
        return Predictions(np.asarray(entry["labels"], dtype=np.int64),
                           np.asarray(entry["predictions"], dtype=np.int64))

    return fetch


def _download_predictions(client: MlflowClient, run_id: str) -> dict[str, Any] | None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, PREDICTIONS_ARTIFACT, tmp)
            return json.loads(Path(path).read_text())
        except (MlflowException, OSError, json.JSONDecodeError):
            return None


def _mark_refused(client: MlflowClient, name: str, decision: Decision) -> None:
    """Tag every version the gate weighed as refused against the current champion.

    The challenger is the best eligible version, so when it fails, every other version of
    the pool fails too (lower score, or a failed check of its own); the tag keeps the next
    ``promote`` from judging them again, which makes a re-run with nothing new ``unchanged``.
    Without a champion there is nothing to mark: a refusal then stays a refusal.
    """
    if decision.champion is None:
        return
    champion = decision.champion.version
    for version in decision.ranked or ((decision.challenger,) if decision.challenger else ()):
        _write(client.set_model_version_tag, name, version.version, REFUSED_AGAINST_TAG,
               champion)
        _write(client.set_model_version_tag, name, version.version, REFUSAL_TAG,
               refusal_text(decision, version, champion))


def refusal_text(decision: Decision, version: VersionScore, champion: str) -> str:
    """Why ``version`` was refused against ``champion`` (a version number): the
    challenger's failed checks, or for a version ranked below it, that it was weighed after
    the refused challenger."""
    reasons = "; ".join(decision.reasons) or "refused"
    if decision.challenger is not None and version.version != decision.challenger.version:
        reasons = (f"ranked below v{decision.challenger.version}, which the gate refused "
                   f"against champion v{champion}: {reasons}")
    return reasons[:REFUSAL_TAG_CHARS]


def _move_aliases(client: MlflowClient, name: str, challenger: VersionScore,
                  champion: VersionScore | None) -> None:
    """Move the aliases so that a kill between any two writes leaves a valid registry:
    ``champion`` and ``previous-champion`` never name one version, and there is always
    exactly one champion (the old one until the single write that makes the new one)."""
    _write(client.set_registered_model_alias, name, STAGING, challenger.version)
    previous = alias_version(client, name, PREVIOUS)
    if previous is not None and champion is not None:
        # The outgoing rollback target goes first: champion (old) + no previous is valid.
        _write(client.delete_registered_model_alias, name, PREVIOUS)
    _write(client.set_registered_model_alias, name, CHAMPION, challenger.version)
    if champion is not None:
        _write(client.set_registered_model_alias, name, PREVIOUS, champion.version)
    stamp = _now()
    _write(client.set_model_version_tag, name, challenger.version, "promoted", stamp)
    if champion is not None:
        _write(client.set_model_version_tag, name, champion.version, RETIRED_TAG, stamp)
        _write(client.set_model_version_tag, name, champion.version, "retired_by",
               challenger.version)


def _result(client: MlflowClient, task: str, name: str, status: str, decision: Decision,
            policy: GatePolicy, *, dry_run: bool = False, lost_race: bool = False,
            note: str = "") -> PromotionResult:
    aliases = aliases_of(client, name)
    report = promotion_report(name, status, decision, policy, aliases, dry_run=dry_run,
                              note=note)
    return PromotionResult(task, name, status, decision, report, dry_run, lost_race, aliases)


def _find(scores: list[VersionScore], version: str) -> VersionScore | None:
    return next((s for s in scores if s.version == version), None)


def _write(method: Callable[..., object], *args: object) -> None:
    try:
        method(*args)
    except MlflowException as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise TrackingError(f"registry: {method.__name__}{args[:2]} failed ({first})") from exc


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _v(version: str | None) -> str:
    return f"v{version}" if version else "none"
