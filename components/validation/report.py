"""The stage's outputs: ``report.json`` (everything), ``metrics.json`` (flat numbers for
``dvc metrics show``) and ``summary.md`` (what a person reads first)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.jsonio import write_json
from components.timings import split_timings, write_timings

REPORT_NAME = "report.json"
METRICS_NAME = "metrics.json"
SUMMARY_NAME = "summary.md"


def validation_metrics(report: dict[str, Any]) -> dict[str, int | float]:
    """Flat numbers from a report, stable keys for ``dvc metrics diff``."""
    dup = report["duplicates"]
    metrics: dict[str, int | float] = {
        "n_samples": report["n_samples"],
        "n_output": report["n_output"],
        "n_excluded": report["excluded"]["n"],
        "n_duplicate_groups": dup["n_groups"],
        "n_duplicate_rows": dup["n_rows"],
        "n_within_split_duplicate_groups": dup["n_within_split_groups"],
        "n_cross_split_groups": dup["n_cross_split_groups"],
        "n_conflicting_groups": dup["n_conflicting_groups"],
        "n_blank": report["blank"]["n"],
        "n_decode_errors": report["n_decode_errors"],
        "n_errors": sum(f["count"] for f in report["findings"] if f["severity"] == "error"),
        "n_warnings": sum(f["count"] for f in report["findings"] if f["severity"] == "warning"),
        "passed": int(report["passed"]),
    }
    for reason, count in report["excluded"]["by_reason"].items():
        metrics[f"n_excluded_{reason}"] = count
    for split, count in report["counts"]["input"]["per_split"].items():
        metrics[f"n_{split}"] = count
    for split, count in report["counts"]["output"]["per_split"].items():
        metrics[f"n_output_{split}"] = count
    return metrics


def render_summary(report: dict[str, Any]) -> str:
    """A short markdown page: verdict, counts, findings, duplicates and exclusions."""
    dup, blank, excluded = report["duplicates"], report["blank"], report["excluded"]
    verdict = "PASSED" if report["passed"] else "FAILED"
    lines = [
        f"# Validation {verdict}",
        "",
        f"Input `{report['input']}`: {report['n_samples']} samples; "
        f"output: {report['n_output']} samples ({excluded['n']} excluded).",
        "",
        "| split | input | output |",
        "|---|---|---|",
    ]
    out_splits = report["counts"]["output"]["per_split"]
    for split, count in report["counts"]["input"]["per_split"].items():
        lines.append(f"| {split} | {count} | {out_splits.get(split, 0)} |")
    lines += ["", "## Findings", ""]
    if not report["findings"]:
        lines.append("No check failed.")
    for finding in report["findings"]:
        shown = finding["details"][:3] or finding["examples"][:3]
        example = f" e.g. {'; '.join(shown)}" if shown else ""
        lines.append(f"- **{finding['severity']}** `{finding['check']}`: {finding['message']} "
                     f"({finding['count']}).{example}")
    lines += [
        "",
        "## Duplicates and blanks",
        "",
        f"- {dup['n_groups']} groups of pixel-identical samples ({dup['n_rows']} rows); "
        f"{dup['n_within_split_groups']} with copies inside one split, "
        f"{dup['n_cross_split_groups']} crossing splits, "
        f"{dup['n_conflicting_groups']} with conflicting labels.",
        f"- {blank['n']} blank or near-constant images (pixel std < {blank['threshold']}).",
        "",
        "## Excluded from the output manifest",
        "",
    ]
    if not excluded["by_reason"]:
        lines.append("Nothing excluded.")
    for reason, count in excluded["by_reason"].items():
        lines.append(f"- {reason}: {count}")
    lines += ["", "## Image sizes per modality (WxHxC: count)", ""]
    for modality, sizes in report["modalities"].items():
        listed = ", ".join(f"{s['shape']}: {s['count']}" for s in sizes[:10])
        more = f" (+{len(sizes) - 10} more)" if len(sizes) > 10 else ""
        lines.append(f"- {modality}: {listed}{more}")
    lines += ["", f"Full report: `{REPORT_NAME}`.", ""]
    return "\n".join(lines)


def write_outputs(out_dir: Path, report: dict[str, Any]) -> dict[str, Path]:
    """Write report, metrics and summary into ``out_dir``; returns their paths by name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report, timings = split_timings(report)
    paths = {
        "report": write_json(out_dir / REPORT_NAME, report),
        "metrics": write_json(out_dir / METRICS_NAME, validation_metrics(report)),
        "timings": write_timings(out_dir, "validate", timings),
    }
    summary = out_dir / SUMMARY_NAME
    summary.write_text(render_summary(report))
    paths["summary"] = summary
    return paths
