"""Markdown reports of promotions and rollbacks, for the terminal and the CI job summary."""

from __future__ import annotations

from registry.gate import Decision, VersionScore, gate_checks
from registry.policy import GatePolicy
from registry.versions import ALIASES

HEADLINE = ("test_accuracy", "test_uar", "test_macro_f1")
STATUS_TITLES: dict[str, str] = {
    "promoted": "promoted", "refused": "refused by the gate", "unchanged": "unchanged",
}


def promotion_report(name: str, status: str, decision: Decision, policy: GatePolicy,
                     aliases: dict[str, str], *, dry_run: bool = False, note: str = "") -> str:
    """Challenger vs champion, per-class recall, the gate's checks and the aliases."""
    ch, champ = decision.challenger, decision.champion
    title = STATUS_TITLES.get(status, status)
    if dry_run:
        title = f"dry run, would be {title}"
    lines = [f"## {name}: {title}", "", _summary(status, decision, note, dry_run), ""]
    if ch is not None or champ is not None:
        lines += _comparison(ch, champ, policy) + [""]
        lines += _recall_table(ch, champ, policy) + [""]
    if decision.checks:
        lines += [f"### Gate checks (primary {policy.primary_metric}, min delta "
                  f"{policy.min_delta}, recall floor {policy.class_recall_floor}, latency "
                  f"budget {policy.max_latency_ms or 'off'}, new test data: "
                  f"{policy.new_test_data})", ""]
        lines += [f"- {'PASS' if c.passed else 'FAIL'} {c.name}: {c.detail}"
                  for c in decision.checks] + [""]
    others = [v for v in decision.ranked if ch is None or v.version != ch.version]
    if others:
        lines += [f"### Other candidates (by {policy.primary_metric})", "",
                  f"| version | architecture | {policy.primary_metric} | gate |",
                  "|---|---|---|---|"]
        lines += [f"| v{v.version} | {v.arch} | {_fmt(v.score(policy.primary_metric))} | "
                  f"{_gate_note(v, champ, policy)} |" for v in others] + [""]
    lines += ["### Aliases", "", alias_line(aliases), ""]
    return "\n".join(lines)


def rollback_report(name: str, restored: str, demoted: str | None,
                    aliases: dict[str, str]) -> str:
    """What the rollback did and where the aliases point now."""
    demoted_text = f"v{demoted} tagged rolled_back" if demoted else "there was no champion"
    return "\n".join([
        f"## {name}: rolled back", "",
        f"v{restored} is champion again; {demoted_text}.", "",
        "### Aliases", "", alias_line(aliases), "",
    ])


def alias_line(aliases: dict[str, str]) -> str:
    """``champion v3 · previous-champion v1 · ...`` in a fixed order, unset ones as none."""
    return " · ".join(f"{a} {('v' + aliases[a]) if a in aliases else 'none'}" for a in ALIASES)


def _summary(status: str, decision: Decision, note: str, dry_run: bool) -> str:
    ch, champ = decision.challenger, decision.champion
    if status == "promoted" and ch is not None:
        verb = "would become" if dry_run else "is now"
        against = f"replacing v{champ.version} ({champ.arch})" if champ else "(no champion before)"
        aside = f" ({decision.note})" if decision.note else ""
        return f"v{ch.version} ({ch.arch}) {verb} champion {against}{aside}."
    if status == "refused":
        reasons = ([note] if note else []) + [r for r in decision.reasons if r != note]
        who = f"v{ch.version} ({ch.arch})" if ch else "No candidate"
        return f"{who} refused: " + "; ".join(reasons) + "."
    return (note or "; ".join(decision.reasons) or "nothing to do") + "."


def _comparison(ch: VersionScore | None, champ: VersionScore | None,
                policy: GatePolicy) -> list[str]:
    cols = [(f"challenger v{ch.version}", ch)] if ch else []
    cols += [(f"champion v{champ.version}", champ)] if champ else []
    metrics = [m for m in HEADLINE if any(m in v.metrics for _, v in cols)]
    if policy.primary_metric not in metrics:
        metrics.insert(0, policy.primary_metric)
    occl = sorted({m for _, v in cols for m in v.metrics if m.startswith("test_occ")
                   and m.endswith("_accuracy")})
    lines = ["| | " + " | ".join(h for h, _ in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    lines.append("| architecture | " + " | ".join(v.arch for _, v in cols) + " |")
    lines.append("| test digest | " + " | ".join(f"`{v.test_digest[:12]}`" for _, v in cols)
                 + " |")
    for metric in metrics + occl:
        lines.append(f"| {metric} | " + " | ".join(_fmt(v.score(metric)) for _, v in cols)
                     + " |")
    lines.append("| latency_ms | " + " | ".join(_fmt(v.latency_ms) for _, v in cols) + " |")
    return lines


def _recall_table(ch: VersionScore | None, champ: VersionScore | None,
                  policy: GatePolicy) -> list[str]:
    classes = list((ch or champ).recall) if (ch or champ) else []
    if champ is not None:
        classes += [c for c in champ.recall if c not in classes]
    if not classes:
        return []
    head = ["class"] + (["challenger"] if ch else []) + (["champion"] if champ else [])
    if ch and champ:
        head.append("change")
    lines = ["### Per-class recall (test)", "", "| " + " | ".join(head) + " |",
             "|---" * len(head) + "|"]
    for cls in classes:
        cells = [cls]
        if ch:
            value = ch.recall.get(cls)
            flag = " (below floor)" if value is not None and value < policy.class_recall_floor \
                else ""
            cells.append(_fmt(value) + flag)
        if champ:
            cells.append(_fmt(champ.recall.get(cls)))
        if ch and champ:
            a, b = ch.recall.get(cls), champ.recall.get(cls)
            cells.append(f"{a - b:+.4f}" if a is not None and b is not None else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _gate_note(v: VersionScore, champion: VersionScore | None, policy: GatePolicy) -> str:
    # The significance test needs both models' predictions: it is run for the challenger
    # only, so the other versions' notes leave it out.
    failed = [c.detail for c in gate_checks(v, champion, policy)
              if not c.passed and c.name != "significance"]
    return "; ".join(failed) if failed else "passes"


def _fmt(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "n/a"
