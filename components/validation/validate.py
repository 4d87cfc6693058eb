"""The validation stage as one function: facts, GX suites, duplicates, policy, outputs."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from components.data.labels import CANONICAL_LABELS
from components.data.manifest import EXCLUDED_COLUMN, SPLITS, manifest_digest, write_manifest
from components.errors import ValidationFailed, one_line
from components.validation.config import ValidateConfig
from components.validation.duplicates import (
    REASONS,
    DuplicateSummary,
    blank_mask,
    exclusion_reasons,
    find_duplicates,
)
from components.validation.facts import collect_facts, default_workers
from components.validation.report import REPORT_NAME, write_outputs
from components.validation.suite import (
    MAX_EXAMPLES,
    SEVERITIES,
    Finding,
    class_count_checks,
    facts_checks,
    manifest_checks,
    run_checks,
)

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.parquet"
# Columns facts cannot be computed without; when one is missing only the schema is reported.
_DECODE_COLUMNS = ("id", "source", "split", "label", "color", "depth", "color2d", "frames",
                   "width", "height", "channels", "content_hash")


@dataclass
class ValidationResult:
    """What the stage found and kept.

    ``manifest`` is the validated manifest (exclusions removed); ``excluded`` lists the removed
    rows (``id, split, label, reason``); ``paths`` maps output names to files.
    """

    passed: bool
    manifest: pd.DataFrame
    facts: pd.DataFrame | None
    findings: list[Finding]
    excluded: pd.DataFrame
    report: dict[str, Any]
    paths: dict[str, Path]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]


def validate_manifest(
    manifest: pd.DataFrame,
    cfg: ValidateConfig,
    out_dir: str | Path,
    *,
    source: str = "<dataframe>",
    progress: bool = True,
    raise_on_error: bool = True,
) -> ValidationResult:
    """Validate a manifest and write ``report.json``, ``summary.md``, ``metrics.json`` and, when
    no error was found, the validated ``manifest.parquet`` into ``out_dir``.

    Files are only read, never deleted: exclusions remove rows from the output manifest.

    Returns:
        The :class:`ValidationResult`.

    Raises:
        ValidationFailed: an error-severity check failed (after the report is written), unless
            ``raise_on_error`` is false.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    frame = manifest.reset_index(drop=True)
    findings, gx_runs = _run(frame, "manifest", manifest_checks(frame))
    facts: pd.DataFrame | None = None
    summary = find_duplicates(pd.DataFrame(columns=["id", "split", "label", "decodes_ok",
                                                    "content_hash"]))
    reasons = pd.Series(pd.NA, index=frame.index, dtype="string")
    if all(column in frame for column in _DECODE_COLUMNS):
        facts = collect_facts(frame, cfg.workers or default_workers(), progress=progress)
        more, runs = _run(facts, "facts", facts_checks(cfg))
        findings += more
        gx_runs.update(runs)
        summary = find_duplicates(facts)
        findings += _duplicate_findings(summary)
        reasons = exclusion_reasons(facts, summary, cfg)
    kept = kept_rows(frame, reasons, keep_test=cfg.keep_official_test)
    if {"label", "split"} <= set(frame.columns):
        counts = _class_counts(kept, frame)
        more, runs = _run(counts, "classes",
                          class_count_checks(cfg, [s for s in SPLITS if s in counts]),
                          id_column="label")
        findings += more
        gx_runs.update(runs)
    findings.sort(key=lambda f: SEVERITIES.index(f.severity))
    passed = not any(f.severity == "error" for f in findings)
    excluded = _excluded_rows(frame, reasons)
    report = _build_report(frame, kept, facts, findings, summary, excluded, cfg, gx_runs,
                           source=source, passed=passed,
                           seconds=round(time.perf_counter() - started, 3))
    paths = write_outputs(out_dir, report)
    manifest_path = out_dir / MANIFEST_NAME
    if passed:
        paths["manifest"] = write_manifest(kept, manifest_path)
    elif manifest_path.exists():
        # A stale validated manifest beside a failing report would let later stages run on
        # data this run rejected; it is our own output, not a data file.
        manifest_path.unlink()
    log.info("validation %s: %d samples, %d kept, %d findings",
             "passed" if passed else "failed", len(frame), len(kept), len(findings))
    result = ValidationResult(passed, kept, facts, findings, excluded, report, paths)
    if not passed and raise_on_error:
        raise ValidationFailed(_failure_message(result.errors, out_dir / REPORT_NAME))
    return result


def kept_rows(frame: pd.DataFrame, reasons: pd.Series, *, keep_test: bool) -> pd.DataFrame:
    """The rows of the validated manifest.

    Rows with an exclusion reason leave it, except test rows when ``keep_test``: those stay,
    with the reason in :data:`EXCLUDED_COLUMN`, so the official test split is scored whole
    and preprocess can write the de-duplicated ``test_dedup`` beside it.
    """
    stays = reasons.isna()
    if keep_test and "split" in frame:
        stays = stays | (frame["split"] == "test")
        flagged = frame.assign(**{EXCLUDED_COLUMN: reasons.astype("string")})
        return flagged[stays.to_numpy()].reset_index(drop=True)
    return frame[stays.to_numpy()].reset_index(drop=True)


def _run(frame: pd.DataFrame, table: str, checks: list,
         id_column: str = "id") -> tuple[list[Finding], dict[str, Any]]:
    findings, run = run_checks(table, frame, checks, id_column=id_column)
    return findings, {table: run}


def _class_counts(kept: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Samples per (label, split) of the kept rows, for every canonical label in the input."""
    labels = [name for name in CANONICAL_LABELS if name in set(frame["label"].dropna())]
    splits = [name for name in SPLITS if name in set(frame["split"].dropna())]
    table = pd.crosstab(kept["label"], kept["split"]) if len(kept) else pd.DataFrame()
    table = table.reindex(index=labels, columns=splits, fill_value=0).fillna(0).astype(int)
    table.index.name = "label"
    table.columns.name = None
    return table.reset_index()


def _duplicate_findings(summary: DuplicateSummary) -> list[Finding]:
    groups = summary.groups
    specs = [
        ("duplicates", groups, f"{summary.n_groups} groups of pixel-identical samples "
         f"({summary.n_rows} rows)"),
        ("leakage", groups[groups["crosses_splits"]] if len(groups) else groups,
         f"{summary.n_cross_split_groups} duplicate groups cross splits (evaluation leakage)"),
        ("label_conflict", groups[groups["conflicting"]] if len(groups) else groups,
         f"{summary.n_conflicting_groups} duplicate groups carry more than one label"),
    ]
    findings = []
    for check, chosen, message in specs:
        if not len(chosen):
            continue
        head = chosen.head(MAX_EXAMPLES)
        findings.append(Finding(
            check, "warning", message, len(chosen),
            examples=[ids[0] for ids in head["ids"]],
            details=[_group_text(row) for row in head.itertuples(index=False)]))
    return findings


def _group_text(group: Any) -> str:
    ids = ", ".join(group.ids[:5]) + (" ..." if len(group.ids) > 5 else "")
    return f"{ids} (splits {'/'.join(group.splits)}, labels {'/'.join(group.labels)})"


def _excluded_rows(frame: pd.DataFrame, reasons: pd.Series) -> pd.DataFrame:
    chosen = reasons.notna().to_numpy()
    columns = [c for c in ("id", "split", "label") if c in frame]
    out = frame.loc[chosen, columns].copy()
    out["reason"] = reasons[chosen].to_numpy()
    return out.reset_index(drop=True)


def _per_split(frame: pd.DataFrame) -> dict[str, int]:
    if "split" not in frame:
        return {}
    counts = frame["split"].value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def _per_class(frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    if not {"split", "label"} <= set(frame.columns) or not len(frame):
        return {}
    table = pd.crosstab(frame["split"], frame["label"])
    return {str(s): {str(lb): int(n) for lb, n in row.items()} for s, row in table.iterrows()}


def _modalities(facts: pd.DataFrame | None) -> dict[str, list[dict[str, Any]]]:
    """Distinct WxHxC per modality with counts, most common first."""
    if facts is None:
        return {}
    out = {}
    for modality in ("color", "depth", "color2d", "frames"):
        counts = facts[f"{modality}_shape"].dropna().value_counts()
        if len(counts):
            out[modality] = [{"shape": str(k), "count": int(v)} for k, v in counts.items()]
    return out


def _build_report(
    frame: pd.DataFrame,
    kept: pd.DataFrame,
    facts: pd.DataFrame | None,
    findings: list[Finding],
    summary: DuplicateSummary,
    excluded: pd.DataFrame,
    cfg: ValidateConfig,
    gx_runs: dict[str, Any],
    *,
    source: str,
    passed: bool,
    seconds: float,
) -> dict[str, Any]:
    blank = (blank_mask(facts, cfg.blank_std_threshold) if facts is not None
             else pd.Series(False, index=frame.index))
    blank_ids = facts.loc[blank, "id"].astype(str).tolist() if facts is not None else []
    decode_errors = 0 if facts is None else int((~facts["decodes_ok"].fillna(False)).sum())
    groups = summary.groups
    by_reason = {r: int((excluded["reason"] == r).sum()) for r in REASONS
                 if (excluded["reason"] == r).any()}
    digest_ok = {"id", "split", "label", "content_hash"} <= set(frame.columns)
    return {
        "passed": passed,
        "input": source,
        "input_digest": _digest(frame) if digest_ok else None,
        "output_digest": _digest(kept) if digest_ok and passed else None,
        "n_samples": len(frame),
        "n_output": len(kept),
        "n_decode_errors": decode_errors,
        "seconds": seconds,
        "params": dataclasses.asdict(cfg),
        "findings": [f.to_dict() for f in findings],
        "counts": {
            "input": {"per_split": _per_split(frame), "per_class": _per_class(frame)},
            "output": {"per_split": _per_split(kept), "per_class": _per_class(kept)},
        },
        "modalities": _modalities(facts),
        "duplicates": {
            "n_groups": summary.n_groups,
            "n_rows": summary.n_rows,
            "n_redundant_rows": summary.n_redundant_rows,
            "n_within_split_groups": summary.n_within_split_groups,
            "n_cross_split_groups": summary.n_cross_split_groups,
            "n_conflicting_groups": summary.n_conflicting_groups,
            "groups": [
                {"content_hash": g.content_hash, "ids": list(g.ids), "splits": list(g.splits),
                 "labels": list(g.labels)}
                for g in groups.itertuples(index=False)
            ],
        },
        "blank": {"n": len(blank_ids), "threshold": cfg.blank_std_threshold, "ids": blank_ids},
        "excluded": {
            "n": len(excluded),
            "by_reason": by_reason,
            "rows": excluded.astype(str).to_dict("records"),
        },
        "gx": gx_runs,
    }


def _digest(frame: pd.DataFrame) -> str:
    """:func:`manifest_digest` of a manifest whose hashes may be null (clips without a hash)."""
    keys = ["id", "split", "label", "content_hash"]
    return manifest_digest(frame[keys].astype("string").fillna(""))


def _failure_message(errors: list[Finding], report_path: Path) -> str:
    first = errors[0]
    example = first.details[0] if first.details else (first.examples[0] if first.examples else "")
    more = f" and {len(errors) - 1} more failed check(s)" if len(errors) > 1 else ""
    hint = f" e.g. {example}" if example else ""
    return one_line(f"validation failed: {first.check}: {first.message} ({first.count}){hint}"
                    f"{more}; see {report_path}")
