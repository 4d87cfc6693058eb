"""Scoring every trained run on the clean and occluded test splits: the evaluate stage's work.

One report per (architecture, test split) from the run's own saved model and the task's
arrays; the flat ``comparison.json`` (what ``dvc metrics`` reads), ``comparison.md`` (a table
sorted by clean accuracy) and the accuracy-vs-occlusion plot.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from components.data.manifest import DEDUP_SPLIT
from components.errors import DataError
from components.jsonio import write_json
from components.models import load_trained
from components.training.data import occlusion_percent, task_folder
from components.training.plots import plot_occlusion_curves
from components.training.report import SCALARS
from components.training.run import score, test_splits

log = logging.getLogger(__name__)


def score_run(run_dir: Path, data_dir: Path) -> dict[str, dict[str, Any]]:
    """Reports per test split (clean first, then by occlusion) of the model in ``run_dir``.

    Raises:
        DataError: no model file, or the model's task folder is missing.
    """
    spec, classifier = load_trained(run_dir)
    task_dir = Path(data_dir) / task_folder(spec.task)
    if not task_dir.is_dir():
        raise DataError(f"{task_dir}: task folder of {spec.arch} not found (run preprocess)")
    return {split: score(classifier, spec, task_dir, split) for split in test_splits(task_dir)}


def evaluate_stage(
    params: dict[str, Any], train_dir: Path, data_dir: Path, out_dir: Path
) -> dict[str, float]:
    """Score all runs under ``train_dir`` and write the comparison files.

    Runs whose ``metrics.json`` says skipped, or that hold no model, are listed as skipped
    in the markdown and left out of the metrics.

    Returns:
        The flat comparison written to ``comparison.json``.
    """
    results: dict[str, dict[str, dict[str, Any]]] = {}
    skipped: dict[str, str] = {}
    owned = (params.get("train") or {}).get("architectures")
    for run_dir in sorted(p for p in Path(train_dir).iterdir() if p.is_dir()):
        if isinstance(owned, list) and run_dir.name not in owned:
            continue  # left over from an earlier architecture list
        reason = _skip_reason(run_dir)
        if reason:
            skipped[run_dir.name] = reason
            continue
        log.info("scoring %s", run_dir.name)
        results[run_dir.name] = score_run(run_dir, data_dir)
    out_dir = Path(out_dir)
    flat = {
        f"{arch}/{split}/{metric}": report[metric]
        for arch, splits in results.items()
        for split, report in splits.items()
        for metric in SCALARS
    }
    write_json(out_dir / "comparison.json", flat)
    (out_dir / "comparison.md").write_text(comparison_table(results, skipped))
    curves = {
        arch: {occlusion_percent(split): report["accuracy"] for split, report in splits.items()
               if split == "test" or split.startswith("test_occ")}
        for arch, splits in results.items()
    }
    plot_occlusion_curves(curves, out_dir / "accuracy_vs_occlusion.png")
    return flat


def _skip_reason(run_dir: Path) -> str | None:
    metrics_path = run_dir / "metrics.json"
    if metrics_path.exists():
        try:
            metrics = json.loads(metrics_path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{metrics_path}: not valid JSON ({exc})") from exc
        if metrics.get("skipped"):
            return str(metrics.get("reason", "skipped by the train stage"))
    if not ((run_dir / "model.pt").exists() or (run_dir / "model.pkl").exists()):
        return "no trained model in the run folder"
    return None


def comparison_table(
    results: dict[str, dict[str, dict[str, Any]]], skipped: dict[str, str]
) -> str:
    """Markdown: one row per architecture; clean scores, then accuracy per occlusion level."""
    levels = sorted({s for splits in results.values() for s in splits
                     if s.startswith("test_occ")}, key=occlusion_percent)
    dedup = any(DEDUP_SPLIT in splits for splits in results.values())
    header = ["architecture", "accuracy", "UAR", "macro-F1"]
    header += ["accuracy (de-duplicated test)"] if dedup else []
    header += [f"acc @ {occlusion_percent(s)}% occl." for s in levels]
    lines = ["# Model comparison (test split)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for arch in sorted(results, key=lambda a: -_score(results[a].get("test"), "accuracy")):
        test = results[arch].get("test", {})
        cells = [arch] + [_fmt(test.get(m)) for m in SCALARS]
        cells += [_fmt(results[arch].get(DEDUP_SPLIT, {}).get("accuracy"))] if dedup else []
        cells += [_fmt(results[arch].get(s, {}).get("accuracy")) for s in levels]
        lines.append("| " + " | ".join(cells) + " |")
    if skipped:
        lines += ["", "Skipped:", ""] + [f"- `{a}`: {r}" for a, r in sorted(skipped.items())]
    return "\n".join(lines) + "\n"


def _score(report: dict[str, Any] | None, metric: str) -> float:
    value = (report or {}).get(metric)
    return float(value) if isinstance(value, float) and value == value else -1.0


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) and value == value else "n/a"
