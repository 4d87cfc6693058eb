"""``claims/report.md``, ``claims/results.json`` and the plot, from the arms' records.

Every number is read from the arms' measurement records (:mod:`components.claims.record`,
distilled from what each arm's evaluate stage wrote) or computed from them here (per-class
recall, within-group confusion); nothing is typed by hand. An arm or seed that has not run
yet is listed as such, so the report can be written while a long experiment set grows.
"""

from __future__ import annotations

import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

from components.claims.dag import (
    INPUTS_FILE,
    PLOTS,
    REPORT,
    RESULTS,
    RUN_OUTPUTS,
    arm_stage_name,
)
from components.claims.record import (
    class_recall,
    cost_path,
    read_json,
    record_path,
    within_group_confusion,
)
from components.claims.spec import ClaimsSpec, Comparison, arms_in_claims
from components.claims.stats import (
    NOT_RUN,
    claim_verdict,
    mean_sd,
    paired,
)
from components.jsonio import write_json
from components.machine import git_commit

RECALL = "recall:"
WITHIN_GROUP = "within_group_confusion"
SYNTHETIC_CAVEAT = ("verdicts on `synthetic` data are about the renderer's faces (rendered "
                    "expression cues, rendered depth and light), not about real faces")


class ArmReader:
    """Reads the arms' measurement records (``claims/measured``), once each."""

    def __init__(self, spec: ClaimsSpec, root: Path) -> None:
        self.spec, self.root = spec, Path(root)
        self._cache: dict[tuple[str, int], dict[str, Any] | None] = {}

    def record(self, arm: str, seed: int) -> dict[str, Any] | None:
        """The arm's record for ``seed``; None when it has not run."""
        key = (arm, seed)
        if key not in self._cache:
            self._cache[key] = read_json(self.root / record_path(arm, seed))
        return self._cache[key]

    def value(self, arm: str, seed: int, metric: str,
              groups: list[list[str]] | None = None) -> float | None:
        """``metric`` of the arm's seed: ``a - b`` of two keys, ``<split>/<metric>`` from the
        flat metrics, ``test/recall:<class>`` or ``test/within_group_confusion`` from the
        clean-test confusion counts (``groups``: the hierarchical arm's groups)."""
        if " - " in metric:
            left, right = (self.value(arm, seed, part.strip(), groups)
                           for part in metric.split(" - ", 1))
            return None if left is None or right is None else left - right
        record = self.record(arm, seed)
        if record is None:
            return None
        split, _, name = metric.partition("/")
        if name.startswith(RECALL):
            return class_recall(record["test_confusion"], name.removeprefix(RECALL))
        if name == WITHIN_GROUP:
            return (within_group_confusion(record["test_confusion"], groups) if groups
                    else None)
        value = record["metrics"].get(f"{split}/{name}")
        return float(value) if isinstance(value, int | float) else None

    def groups_for(self, comparison: Comparison, seed: int) -> list[list[str]] | None:
        """The expression groups of whichever arm of the comparison has them (same seed)."""
        for arm in (comparison.arm, comparison.baseline):
            record = self.record(arm, seed)
            if record is not None and record["groups"]:
                return record["groups"]
        return None


def measure(spec: ClaimsSpec, root: Path) -> dict[str, Any]:
    """Every comparison of every claim over the seeds that finished, arm costs and budgets."""
    reader = ArmReader(spec, root)
    claims = []
    for claim in spec.claims:
        rows = []
        for comparison in claim.comparisons:
            rows.append(_compare(reader, spec, comparison))
        claims.append({"number": claim.number, "statement": claim.statement,
                       "data": claim.data, "note": claim.note, "oracle": list(claim.oracle),
                       "comparisons": rows,
                       "verdict": (claim_verdict([r["verdict"] for r in rows]) if rows
                                   else "checked by tests")})
    own_seeds = {arm: list(spec.seeds_of(arm)) for arm in arms_in_claims(spec)
                 if spec.arms[arm].seeds}
    return {"seeds": list(spec.seeds), "own_seeds": own_seeds, "claims": claims,
            "arms": arm_facts(spec, root)}


def _compare(reader: ArmReader, spec: ClaimsSpec, comparison: Comparison) -> dict[str, Any]:
    arm_values, base_values, seeds = [], [], []
    for seed in spec.seeds:
        groups = reader.groups_for(comparison, seed)
        a = reader.value(comparison.arm, seed, comparison.metric, groups)
        b = reader.value(comparison.baseline, seed, comparison.baseline_metric, groups)
        if a is not None and b is not None:
            arm_values.append(a)
            base_values.append(b)
            seeds.append(seed)
    row: dict[str, Any] = {**asdict(comparison), "seeds": seeds, "arm_values": arm_values,
                           "baseline_values": base_values}
    if not seeds:
        return {**row, "verdict": NOT_RUN}
    result = paired(arm_values, base_values, comparison.better)
    return {**row, **{f"difference_{k}": v for k, v in asdict(result).items()},
            "arm_mean_sd": mean_sd(arm_values), "baseline_mean_sd": mean_sd(base_values),
            "verdict": result.verdict}


def arm_facts(spec: ClaimsSpec, root: Path) -> dict[str, Any]:
    """Per arm: architecture, data, epochs planned and run per seed, CPU seconds per seed and
    the commit of the code each seed ran."""
    arm_inputs = read_json(Path(root) / INPUTS_FILE) or {}
    facts = {}
    for arm in arms_in_claims(spec):
        entry = spec.arms[arm]
        runs = {}
        for seed in spec.seeds_of(arm):
            record = read_json(Path(root) / record_path(arm, seed))
            if record is None:
                continue
            cost = read_json(Path(root) / cost_path(arm, seed)) or {}
            inputs = arm_inputs.get(arm_stage_name(arm, seed), [])
            runs[str(seed)] = {"epochs_planned": record["epochs_planned"],
                               "epochs_run": record["epochs_run"],
                               "cpu_seconds": cost.get("cpu_seconds"),
                               "machine": cost.get("machine"),
                               "commit": code_commit(root, cost.get("commit"), inputs)}
        facts[arm] = {"arch": entry.arch, "variant": entry.variant,
                      "overrides": entry.overrides, "runs": runs}
    return facts


def code_commit(root: Path, commit: str | None, inputs: list[str]) -> str | None:
    """The commit whose code a record's run used: the last commit at or before the recorded
    one that changed one of ``inputs`` (``claims/inputs.json``: the code and conf its stage
    and the data stages under it read; ``-dirty`` kept).

    Arms run one after another, each committing its record, and other work lands between
    them (a README line, another arm's code); naming the last commit that changed what this
    arm reads makes arms run by the same code read the same, and a commit that touched none
    of it is not named. Claims parameters are not among the inputs (git cannot tell which
    key of ``claims/params.yaml`` changed): the overrides column shows those. With no inputs
    (no ``claims/inputs.json``) or a commit this clone does not have (a shallow clone), the
    commit is returned as recorded.
    """
    if not commit or not inputs:
        return commit
    head, dirty = commit.removesuffix("-dirty"), commit.endswith("-dirty")
    try:
        found = subprocess.run(["git", "rev-list", "-1", head, "--", *inputs],
                               cwd=root, capture_output=True, text=True, check=True,
                               timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return commit
    return (found or head) + ("-dirty" if dirty else "")


def write_report(spec: ClaimsSpec, root: Path) -> Path:
    """Measure, then write ``claims/results.json``, the plot and ``claims/report.md``."""
    root = Path(root)
    results = measure(spec, root)
    # DVC deletes the report's outputs before running it: those, the records and the lock
    # are what a claims run rewrites, so they do not make the checkout dirty
    results["commit"] = git_commit(root, ignore=[p.as_posix() for p in RUN_OUTPUTS]) or "unknown"
    write_json(root / RESULTS, results)
    plot = plot_differences(results, root / PLOTS / "differences.png")
    (root / REPORT).write_text(render_markdown(results, plot.relative_to(root / REPORT.parent)),
                               encoding="utf-8")
    return root / REPORT


def plot_differences(results: dict[str, Any], out: Path) -> Path:
    """A forest plot: each comparison's mean paired difference and its 95 % interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(f"{c['number']}: {r['label']}", r) for c in results["claims"]
            for r in c["comparisons"] if r["verdict"] != NOT_RUN]
    out.parent.mkdir(parents=True, exist_ok=True)
    height = max(2.0, 0.32 * len(rows) + 1.0)
    fig, ax = plt.subplots(figsize=(9, height))
    colours = {"supported": "tab:green", "not supported": "tab:red"}
    for i, (_, row) in enumerate(reversed(rows)):
        colour = colours.get(row["verdict"], "tab:gray")
        low, high = row["difference_low"], row["difference_high"]
        if low == low:  # an interval exists (two or more seeds)
            ax.plot([low, high], [i, i], color=colour, linewidth=2)
        ax.plot(row["difference_mean"], i, "o", color=colour)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(rows)), [label for label, _ in reversed(rows)], fontsize=7)
    ax.set_xlabel("paired difference in the claimed direction (mean, 95 % interval over seeds)")
    ax.set_title("Claims: green supported, red not supported, grey inconclusive")
    fig.tight_layout()
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


def _own_seeds(results: dict[str, Any]) -> str:
    """``, except ...`` for the arms that run their own seeds (a run over 10 minutes runs one
    seed), so a reader sees why a comparison has fewer seeds."""
    own = results.get("own_seeds") or {}
    if not own:
        return ""
    by_seeds: dict[str, list[str]] = {}
    for arm, seeds in own.items():
        by_seeds.setdefault(", ".join(map(str, seeds)), []).append(f"`{arm}`")
    parts = [f"{', '.join(arms)} with seed{'s' if ',' in seeds else ''} {seeds}"
             for seeds, arms in by_seeds.items()]
    return ", except " + "; ".join(parts) + " (over 10 minutes a run)"


def render_markdown(results: dict[str, Any], plot: Path) -> str:
    """The report: the rule, one row per claim, then every comparison and the arms."""
    seeds = results["seeds"]
    lines = [
        "# The patents' claims, measured",
        "",
        "Written by `dvc repro claims/dvc.yaml` (or `python -m pipelines.claims report` on the "
        f"arms that have run) at commit `{results['commit']}`, from `claims/params.yaml`. "
        f"Each arm ran once per seed ({', '.join(map(str, seeds))}){_own_seeds(results)}; two "
        "arms in a comparison share the seed. A difference is taken in the direction the claim "
        "predicts; the verdict is *supported* when its 95 % Student-t interval over seeds lies "
        "above zero, *not supported* when it lies below zero, *inconclusive at this budget* "
        f"otherwise. Note: {SYNTHETIC_CAVEAT}.",
        "",
        "| claim | data | arms | result (mean difference, 95 % interval) | verdict |",
        "|---|---|---|---|---|",
    ]
    for claim in results["claims"]:
        lines.append(_claim_row(claim))
    lines += ["", f"![paired differences]({plot.as_posix()})", "", "## Comparisons", "",
              "| claim | comparison | metric | seeds | arm (mean ± sd) | baseline (mean ± sd) "
              "| difference [95 % interval] | verdict |",
              "|---|---|---|---|---|---|---|---|"]
    for claim in results["claims"]:
        for row in claim["comparisons"]:
            lines.append(_comparison_row(claim["number"], row))
    lines += ["", "## Claims and notes", ""]
    for claim in results["claims"]:
        note = f" {claim['note']}" if claim["note"] else ""
        lines.append(f"- **{claim['number']}** {claim['statement']}{note}")
    lines += _arm_lines(results["arms"])
    return "\n".join(lines) + "\n"


def _claim_row(claim: dict[str, Any]) -> str:
    if claim["oracle"] and not claim["comparisons"]:
        tests = ", ".join(f"`{t}`" for t in claim["oracle"])
        return (f"| {claim['number']} | worked numbers | none | arithmetic checked by {tests} "
                f"| checked by tests |")
    arms = sorted({a for r in claim["comparisons"] for a in (r["arm"], r["baseline"])})
    measured = [r for r in claim["comparisons"] if r["verdict"] != NOT_RUN]
    result = "; ".join(f"{r['label']}: {_signed(r['difference_mean'])} "
                       f"[{_signed(r['difference_low'])}, {_signed(r['difference_high'])}]"
                       for r in measured) or "not run yet"
    return (f"| {claim['number']} | {claim['data']} | {', '.join(arms)} | {result} | "
            f"{claim['verdict']} |")


def _comparison_row(number: int, row: dict[str, Any]) -> str:
    metric = row["metric"] if row["metric"] == row["baseline_metric"] else (
        f"{row['metric']} vs {row['baseline_metric']}")
    head = f"| {number} | {row['label']} | `{metric}` ({row['better']} is better) |"
    if row["verdict"] == NOT_RUN:
        return head + " 0 | | | | not run yet |"
    arm_mean, arm_sd = row["arm_mean_sd"]
    base_mean, base_sd = row["baseline_mean_sd"]
    return (head + f" {len(row['seeds'])} | {_num(arm_mean)} ± {_num(arm_sd)} | "
            f"{_num(base_mean)} ± {_num(base_sd)} | {_signed(row['difference_mean'])} "
            f"[{_signed(row['difference_low'])}, {_signed(row['difference_high'])}] | "
            f"{row['verdict']} |")


def _epochs_cell(run: dict[str, Any], arch: str) -> str:
    """``planned/run`` for a network; an estimator (``svm_fusion``, ``hierarchical``) trains
    several networks, each planned the epochs shown, and has no single count of epochs run."""
    from components.models.registry import plain_networks

    if arch in plain_networks():
        return f"{run['epochs_planned']}/{run['epochs_run']}"
    return f"{run['epochs_planned']} per network"


def _short(commit: str | None) -> str:
    """A commit as ``abc1234`` (``-dirty`` kept); ``not recorded`` for records older than
    the commit field."""
    if not commit:
        return "not recorded"
    head, dirty = commit.removesuffix("-dirty"), commit.endswith("-dirty")
    return f"`{head[:7]}{'-dirty' if dirty else ''}`"


def _arm_lines(arms: dict[str, Any]) -> list[str]:
    lines = ["", "## Arms: budget and cost", "",
             "| arm | architecture | data | overrides | epochs planned / run per seed "
             "| CPU minutes per seed | code (commit) |", "|---|---|---|---|---|---|---|"]
    total, machines = 0.0, set()
    for arm, facts in arms.items():
        runs = facts["runs"]
        epochs = ", ".join(_epochs_cell(r, facts["arch"]) for r in runs.values())
        cpu = [r["cpu_seconds"] for r in runs.values() if r["cpu_seconds"] is not None]
        total += sum(cpu)
        machines |= {r["machine"] for r in runs.values() if r["machine"]}
        overrides = ", ".join(f"`{k}={v}`" for k, v in facts["overrides"].items()) or "-"
        commits = dict.fromkeys(_short(r.get("commit")) for r in runs.values())
        lines.append(f"| {arm} | {facts['arch']} | {facts['variant']} | {overrides} | "
                     f"{epochs or 'not run yet'} | "
                     f"{', '.join(f'{c / 60:.1f}' for c in cpu) or '-'} | "
                     f"{', '.join(commits) or '-'} |")
    lines += ["", f"Total CPU time of the arms that ran: {total / 3600:.2f} hours "
              f"(process CPU time, all threads; no GPU). Machines: "
              f"{'; '.join(sorted(machines)) or 'none yet'}."]
    return lines


def _num(value: float) -> str:
    return "n/a" if value != value else f"{value:.3f}"


def _signed(value: float) -> str:
    return "n/a" if value != value else f"{value:+.3f}"


