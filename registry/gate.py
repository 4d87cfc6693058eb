"""The promotion gate: a pure decision over registered versions, no MLflow calls.

Keeping the decision free of I/O means every rule is unit-testable and the same decision
object drives the real promotion, the dry run and the markdown report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from components.errors import DataError
from registry.policy import REPLACE_ON_NEW_TEST_DATA, GatePolicy
from registry.significance import Predictions, metric_of, paired_bootstrap

# The per-sample predictions of a version on a test split, fetched on demand (None: none
# were logged); the gate itself does no I/O.
Evidence = Callable[["VersionScore", str], Predictions | None]

AGAINST_CHAMPION: frozenset[str] = frozenset({"delta", "significance", "recall drop"})

PROMOTE = "promote"
REFUSE = "refuse"
UNCHANGED = "unchanged"


@dataclass(frozen=True)
class VersionScore:
    """What the gate knows about one registered version (read from its tags)."""

    version: str
    arch: str
    run_id: str
    test_digest: str
    metrics: dict[str, float]
    recall: dict[str, float]
    latency_ms: float | None = None
    retired: bool = False
    rolled_back: bool = False
    refused_against: str | None = None  # champion version it was already refused against
    refusal: str | None = None  # the gate's reason, when it refused the version
    digests: dict[str, str] = field(default_factory=dict)  # test split -> its digest

    def score(self, metric: str) -> float | None:
        """The version's value of ``metric``, or None when it was never logged."""
        return self.metrics.get(metric)

    def digest_for(self, metric: str) -> str:
        """The digest of the test split ``metric`` was scored on ("" when unknown): the
        clean split's for ``test_uar``, the occluded split's for ``test_occ25_uar``."""
        split = metric_split(metric)
        return self.digests.get(split) or (self.test_digest if split == "test" else "")


METRIC_NAMES: tuple[str, ...] = ("accuracy", "uar", "macro_f1", "loss")
NO_TTA = "_notta"  # the same split scored without test-time averaging: the same data


def metric_split(metric: str) -> str:
    """The test split a ``test_*`` metric was scored on (``test_occ25_uar`` ->
    ``test_occ25``, ``test_notta_uar`` -> ``test``)."""
    for name in METRIC_NAMES:
        if metric.endswith(f"_{name}"):
            metric = metric[: -len(name) - 1]
            break
    return metric[: -len(NO_TTA)] if metric.endswith(NO_TTA) else metric


@dataclass(frozen=True)
class Check:
    """One rule of the policy applied to the challenger."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Decision:
    """The gate's verdict: promote the challenger, refuse it, or leave things unchanged."""

    verdict: str
    challenger: VersionScore | None
    champion: VersionScore | None
    checks: tuple[Check, ...] = ()
    note: str = ""
    ranked: tuple[VersionScore, ...] = field(default=(), repr=False)

    @property
    def passed(self) -> bool:
        """True when the challenger may become champion."""
        return self.verdict == PROMOTE

    @property
    def reasons(self) -> list[str]:
        """Why the challenger was refused (the failed checks), or the note otherwise."""
        failed = [c.detail for c in self.checks if not c.passed]
        return failed or ([self.note] if self.note else [])


def decide(
    versions: list[VersionScore],
    champion: VersionScore | None,
    policy: GatePolicy,
    *,
    version: str | None = None,
    rejudge: bool = False,
    evidence: Evidence | None = None,
) -> Decision:
    """Pick the challenger among ``versions`` and judge it against ``champion``.

    Without ``version``, the challenger is the best version by the primary metric that
    passes the digest, floor and latency checks, among versions that are neither champion,
    retired nor rolled back, nor already refused against this champion (newer wins ties);
    when none passes, the best one is reported with its failures. With no champion, only
    versions scored on the newest version's test data compete (the others are set aside
    and named in the note), and the challenger only has to pass its own checks. When every
    remaining version was already refused against the current champion, nothing new is
    there to judge: ``unchanged``. With ``registry.new_test_data: replace`` the newest
    version's test data is the task's also when there is a champion: only versions scored on
    it compete, and when the champion was scored on other data the challenger replaces it on
    its own checks (nothing can be compared across test sets). Refusals are sticky until
    the champion changes (a loosened policy does not re-judge them by itself); ``rejudge``
    judges them again.

    Args:
        versions: every registered version of the task's model.
        champion: the version holding the ``champion`` alias, if any.
        version: judge this version instead of choosing (``--version``).
        rejudge: ignore earlier refusals against this champion (``--rejudge``).
        evidence: per-sample predictions of a version, for ``registry.significance``.

    Raises:
        KeyError: ``version`` is not among ``versions``.
    """
    if version is not None:
        chosen = {v.version: v for v in versions}[str(version)]
        if champion is not None and chosen.version == champion.version:
            return Decision(UNCHANGED, chosen, champion,
                            note=f"version {chosen.version} already is the champion")
        checks = gate_checks(chosen, champion, policy, evidence)
        return _verdict(chosen, champion, checks, (chosen,))
    pool = [v for v in versions if not (v.retired or v.rolled_back)
            and (champion is None or v.version != champion.version)]
    set_aside: list[VersionScore] = []
    if pool and (champion is None or policy.new_test_data == REPLACE_ON_NEW_TEST_DATA):
        current = [*pool, champion] if champion is not None else pool
        pool, set_aside = _current_test_data(pool, policy.primary_metric, current)
    judged = [v for v in pool if not rejudge and champion is not None
              and v.refused_against == champion.version]
    ranked = rank([v for v in pool if v not in judged], policy.primary_metric)
    if not ranked:
        if champion is None:
            return Decision(REFUSE, None, None, note="no candidate versions to promote")
        note = (f"no new challenger: {len(judged)} version(s) already refused against "
                f"champion v{champion.version}" if judged
                else "no challenger: every other version is retired or rolled back")
        return Decision(UNCHANGED, None, champion, note=note)
    note = _set_aside_note(set_aside)
    for candidate in ranked:  # the best that passes its own checks (not those against the
        own = gate_checks(candidate, champion, policy)  # champion), judged fully after
        if all(c.passed for c in own if c.name not in AGAINST_CHAMPION):
            checks = gate_checks(candidate, champion, policy, evidence)
            return _verdict(candidate, champion, checks, tuple(ranked), note)
    return _verdict(ranked[0], champion, gate_checks(ranked[0], champion, policy, evidence),
                    tuple(ranked), note)


def _current_test_data(pool: list[VersionScore], metric: str,
                       current: list[VersionScore] | None = None,
                       ) -> tuple[list[VersionScore], list[VersionScore]]:
    """Only versions of ``pool`` scored on the current test data compete: that of the newest
    version of ``current`` (default: the pool), for the split ``metric`` names. A model
    scored on an easier test set must not win the first promotion, nor a takeover.
    Returns ``(competing, set aside)``."""
    newest = max(current or pool, key=lambda v: _number(v.version)).digest_for(metric)
    competing = [v for v in pool if newest and v.digest_for(metric) == newest]
    return competing, [v for v in pool if v not in competing]


def _set_aside_note(set_aside: list[VersionScore]) -> str:
    if not set_aside:
        return ""
    listed = ", ".join(f"v{v.version} ({(v.test_digest or 'no digest')[:12]})"
                       for v in sorted(set_aside, key=lambda v: _number(v.version)))
    return (f"set aside, scored on other test data than the newest version: {listed}")


def rank(versions: list[VersionScore], metric: str) -> list[VersionScore]:
    """Best first by ``metric`` (missing scores last), newer version first on ties."""
    def key(v: VersionScore) -> tuple[float, int]:
        score = v.score(metric)
        return (-(score if score is not None else float("-inf")), -_number(v.version))
    return sorted(versions, key=key)


def gate_checks(
    challenger: VersionScore, champion: VersionScore | None, policy: GatePolicy,
    evidence: Evidence | None = None,
) -> tuple[Check, ...]:
    """Every rule of ``policy`` applied to ``challenger`` (those comparing it with a
    champion only when there is one scored on the same test data)."""
    checks = [_metric_check(challenger, policy)]
    if champion is not None:
        checks.append(_digest_check(challenger, champion, policy))
    compared = champion is not None and not takes_over(challenger, champion, policy)
    checks.append(_floor_check(challenger, policy))
    if policy.min_metrics:
        checks.append(_minimum_check(challenger, policy.min_metrics))
    if compared and policy.max_recall_drop is not None:
        checks.append(_recall_drop_check(challenger, champion, policy.max_recall_drop))
    if policy.max_latency_ms is not None:
        checks.append(_latency_check(challenger, policy.max_latency_ms))
    if compared:
        checks.append(_delta_check(challenger, champion, policy))
        if policy.significance is not None:
            checks.append(_significance_check(challenger, champion, policy, evidence))
    return tuple(checks)


def takes_over(challenger: VersionScore, champion: VersionScore, policy: GatePolicy) -> bool:
    """True when ``registry.new_test_data: replace`` lets ``challenger``, scored on other
    (known) test data than ``champion``, replace it without a comparison."""
    mine = challenger.digest_for(policy.primary_metric)
    return (policy.new_test_data == REPLACE_ON_NEW_TEST_DATA and bool(mine)
            and mine != champion.digest_for(policy.primary_metric))


def weak_classes(recall: dict[str, float], floor: float) -> list[str]:
    """Classes whose recall is below ``floor``, worst first."""
    return [name for name, value in sorted(recall.items(), key=lambda kv: kv[1])
            if value < floor]


def _verdict(challenger: VersionScore, champion: VersionScore | None,
             checks: tuple[Check, ...], ranked: tuple[VersionScore, ...],
             note: str = "") -> Decision:
    verdict = PROMOTE if all(c.passed for c in checks) else REFUSE
    return Decision(verdict, challenger, champion, checks, note=note, ranked=ranked)


def _metric_check(v: VersionScore, policy: GatePolicy) -> Check:
    value = v.score(policy.primary_metric)
    if value is None:
        return Check("metric", False, f"v{v.version} has no {policy.primary_metric} tag")
    return Check("metric", True, f"{policy.primary_metric} = {value:.4f}")


def _digest_check(v: VersionScore, champion: VersionScore, policy: GatePolicy) -> Check:
    metric = policy.primary_metric
    split = metric_split(metric)
    mine, theirs = v.digest_for(metric), champion.digest_for(metric)
    if mine and mine == theirs:
        return Check("digest", True, f"same {split} data as the champion ({mine[:12]})")
    digests = f"digest {(mine or 'missing')[:12]} vs {(theirs or 'missing')[:12]}"
    if takes_over(v, champion, policy):
        return Check("digest", True,
                     f"scored on new {split} data ({digests}); registry.new_test_data: replace "
                     f"lets it replace champion v{champion.version} on its own checks (no "
                     "comparison across test sets; the old champion stays previous-champion)")
    hint = ("" if not mine else "; registry.new_test_data: replace lets the newest test data "
            "take over")
    return Check("digest", False,
                 f"{metric} was scored on other {split} data than the champion's ({digests})"
                 f"{hint}")


def _floor_check(v: VersionScore, policy: GatePolicy) -> Check:
    if not v.recall:
        return Check("floor", False, f"v{v.version} has no per-class recall tags")
    weak = weak_classes(v.recall, policy.class_recall_floor)
    if weak:
        listed = ", ".join(f"{name} {v.recall[name]:.3f}" for name in weak)
        return Check("floor", False,
                     f"class recall below the floor {policy.class_recall_floor}: {listed}")
    return Check("floor", True,
                 f"every class recall >= {policy.class_recall_floor} "
                 f"(lowest {min(v.recall.values()):.3f})")


def _minimum_check(v: VersionScore, minimums: dict[str, float]) -> Check:
    missing = [metric for metric in minimums if v.score(metric) is None]
    if missing:
        return Check("minimums", False, f"v{v.version} has no {', '.join(missing)} "
                                        "(registry.min_metrics asks for it)")
    low = [f"{metric} {v.score(metric):.3f} < {floor}" for metric, floor in minimums.items()
           if v.score(metric) < floor]  # type: ignore[operator]
    if low:
        return Check("minimums", False, "below registry.min_metrics: " + ", ".join(low))
    return Check("minimums", True, ", ".join(f"{metric} {v.score(metric):.3f} >= {floor}"
                                             for metric, floor in minimums.items()))


def _recall_drop_check(v: VersionScore, champion: VersionScore, max_drop: float) -> Check:
    shared = [c for c in champion.recall if c in v.recall]
    if not shared:
        return Check("recall drop", False, f"v{v.version} and the champion share no per-class "
                                           "recall to compare")
    drops = sorted(((champion.recall[c] - v.recall[c], c) for c in shared), reverse=True)
    worst, name = drops[0]
    over = [f"{c} {champion.recall[c]:.3f} -> {v.recall[c]:.3f}" for d, c in drops
            if d > max_drop + 1e-12]
    if over:
        return Check("recall drop", False, f"class recall falls more than {max_drop} below "
                                           f"the champion's: {', '.join(over)}")
    return Check("recall drop", True, f"no class falls more than {max_drop} below the "
                                      f"champion's recall (largest drop {worst:+.3f}, {name})")


def _latency_check(v: VersionScore, budget: float) -> Check:
    if v.latency_ms is None:
        return Check("latency", False,
                     f"latency budget {budget} ms is set but v{v.version} has no latency_ms tag")
    if v.latency_ms > budget:
        return Check("latency", False, f"latency {v.latency_ms:.2f} ms > budget {budget} ms")
    return Check("latency", True, f"latency {v.latency_ms:.2f} ms <= budget {budget} ms")


def _delta_check(v: VersionScore, champion: VersionScore, policy: GatePolicy) -> Check:
    metric = policy.primary_metric
    mine, theirs = v.score(metric), champion.score(metric)
    if mine is None:
        return Check("delta", False, f"v{v.version} has no {metric}")
    if theirs is None:  # e.g. registry.primary_metric changed: nothing to compare with
        return Check("delta", False, f"champion v{champion.version} has no {metric}, so no "
                                     "gain can be shown; promote with --version to replace it")
    gain = mine - theirs
    # A tiny epsilon keeps an exact `min_delta` gain from failing on float rounding.
    if gain + 1e-12 >= policy.min_delta:
        return Check("delta", True, f"{metric} {mine:.4f} beats the champion's {theirs:.4f} "
                                    f"by {gain:+.4f} (>= {policy.min_delta})")
    return Check("delta", False, f"{metric} {mine:.4f} does not beat the champion's "
                                 f"{theirs:.4f} by {policy.min_delta} (gain {gain:+.4f})")


def _significance_check(v: VersionScore, champion: VersionScore, policy: GatePolicy,
                        evidence: Evidence | None) -> Check:
    metric, split = policy.primary_metric, metric_split(policy.primary_metric)
    mine = evidence(v, split) if evidence else None
    theirs = evidence(champion, split) if evidence else None
    if mine is None or theirs is None:
        lacking = f"v{v.version}" if mine is None else f"champion v{champion.version}"
        return Check("significance", False, f"{lacking} has no per-sample {split} predictions "
                                            "for the paired significance test")
    try:
        gain, p = paired_bootstrap(metric_of(metric), mine, theirs,
                                   resamples=policy.bootstrap_resamples)
    except DataError as exc:
        return Check("significance", False, str(exc))
    verdict = p <= policy.significance  # type: ignore[operator]
    return Check("significance", verdict,
                 f"paired bootstrap over {len(mine.labels)} {split} samples: {metric} gain "
                 f"{gain:+.4f}, p = {p:.3f} ({'<=' if verdict else '>'} {policy.significance})")


def _number(version: str) -> int:
    return int(version) if str(version).isdigit() else -1
