"""Promotion and rollback: moving the aliases, under the promotion lock.

The decision is taken on a snapshot of the registry, then re-checked inside the lock: if
the champion moved meanwhile (a concurrent promotion won), this one reports that it lost
instead of overwriting, so ``champion`` and ``previous-champion`` always name two different
versions and ``previous-champion`` is the champion the winner replaced.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.errors import DataError
from components.tracking.store import TrackingError
from registry.gate import PROMOTE, REFUSE, Decision, VersionScore, decide
from registry.lock import PromotionLock
from registry.policy import GatePolicy
from registry.report import promotion_report, rollback_report
from registry.versions import (
    CHAMPION,
    PREVIOUS,
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
    version: str | None = None, lock_wait_s: float | None = None,
) -> PromotionResult:
    """Judge the task's challenger and, when it passes, make it champion.

    Aliases move in this order: ``staging`` -> challenger, ``previous-champion`` -> old
    champion, ``champion`` -> challenger; the old champion is tagged ``retired`` (never
    deleted). A dry run judges and reports without writing anything.

    Args:
        version: judge this version instead of the best candidate.
        lock_wait_s: how long to wait for a concurrent promotion (default: the lock TTL).

    Raises:
        DataError: the task has no registered versions, or ``version`` is not one of them.
        TrackingError: the store failed.
        LockBusy: the lock stayed held by a live promotion for ``lock_wait_s``.
    """
    name = policy.model_name(task)
    decision = _judge(client, name, policy, version)
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
            return _result(client, task, name, REFUSED, decision, policy, lost_race=True,
                           note=f"lost the race: champion moved from {_v(before)} to {_v(now)} "
                                "while this promotion was deciding; re-run to judge against it")
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


def _judge(client: MlflowClient, name: str, policy: GatePolicy,
           version: str | None) -> Decision:
    versions = list_versions(client, name)
    if not versions:
        raise DataError(f"{name}: no registered versions (run `ferops registry register`)")
    scores = [version_score(mv) for mv in versions]
    if version is not None and str(version) not in {s.version for s in scores}:
        raise DataError(f"{name}: no version {version} (versions: "
                        f"{', '.join(s.version for s in scores)})")
    champion_mv = alias_version(client, name, CHAMPION)
    champion = _find(scores, str(champion_mv.version)) if champion_mv else None
    return decide(scores, champion, policy, version=version)


def _mark_refused(client: MlflowClient, name: str, decision: Decision) -> None:
    """Tag every version the gate weighed as refused against the current champion.

    The challenger is the best eligible version, so when it fails, every other version of
    the pool fails too (lower score, or a failed check of its own); the tag keeps the next
    ``promote`` from judging them again, which makes a re-run with nothing new ``unchanged``.
    Without a champion there is nothing to mark: a refusal then stays a refusal.
    """
    if decision.champion is None:
        return
    for version in decision.ranked or ((decision.challenger,) if decision.challenger else ()):
        _write(client.set_model_version_tag, name, version.version, REFUSED_AGAINST_TAG,
               decision.champion.version)


def _move_aliases(client: MlflowClient, name: str, challenger: VersionScore,
                  champion: VersionScore | None) -> None:
    _write(client.set_registered_model_alias, name, STAGING, challenger.version)
    if champion is not None:
        _write(client.set_registered_model_alias, name, PREVIOUS, champion.version)
    _write(client.set_registered_model_alias, name, CHAMPION, challenger.version)
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
