"""Writing a run's results: flat metrics for ``dvc metrics``, per-class JSON, CSV, plots.

Layout under the run folder (what ``dvc.yaml`` declares for the train stage):
``metrics.json`` (flat scalars), ``per_class.json`` (per split: recall, F1, confusion),
``history.csv`` (one row per epoch, for ``dvc plots``), for an estimator
``sub_models.csv`` (every network it trained: one row per network and epoch) and
``plots/*.png``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from components.jsonio import write_json
from components.training.plots import (
    plot_confusion,
    plot_learning_curves,
    plot_per_class,
    plot_sub_model_curves,
)

SCALARS: tuple[str, ...] = ("accuracy", "uar", "macro_f1")
SUB_MODELS_FILE = "sub_models.csv"  # an estimator's networks: part, epoch, scores
SUB_MODELS_PLOT = "sub_model_curves.png"


def write_history_csv(history: list[dict[str, Any]], path: Path) -> Path:
    """One row per epoch; columns are the union of the rows' keys, ``part`` (when the rows
    carry it) and ``epoch`` first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = {k for row in history for k in row}
    lead = (["part"] if "part" in keys else []) + ["epoch"]
    columns = lead + sorted(keys - set(lead))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in history:
            writer.writerow({k: row.get(k, "") for k in columns})
    return path


def split_score_metrics(split_reports: dict[str, dict[str, Any]]) -> dict[str, float]:
    """``{<split>_<metric>: value}`` for accuracy, UAR and macro-F1 of every split."""
    return {
        f"{split}_{name}": report[name]
        for split, report in split_reports.items()
        for name in SCALARS
    }


def write_run_outputs(
    out_dir: Path,
    classes: list[str],
    history: list[dict[str, Any]],
    split_reports: dict[str, dict[str, Any]],
    extra: dict[str, Any],
    title: str,
    sub_model_history: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write metrics.json, per_class.json, history.csv and the plots of one run, and for an
    estimator the epoch rows of every network it trained (``sub_models.csv`` and its plot;
    a stale pair from an earlier run in the folder is removed when there are none).

    Returns:
        The flat metrics written to ``metrics.json``.
    """
    out_dir = Path(out_dir)
    metrics = {**split_score_metrics(split_reports), **extra}
    write_json(out_dir / "metrics.json", metrics)
    per_class = {
        split: {k: r[k] for k in ("per_class_recall", "per_class_f1", "confusion", "n")}
        for split, r in split_reports.items()
    }
    write_json(out_dir / "per_class.json", {"classes": classes, "splits": per_class})
    plots = out_dir / "plots"
    if history:
        write_history_csv(history, out_dir / "history.csv")
        plot_learning_curves(history, plots / "learning_curves.png", title)
    write_sub_model_history(sub_model_history or [], out_dir, title)
    for split, report in split_reports.items():
        plot_confusion(report["confusion"], classes, plots / f"confusion_{split}.png",
                       f"{title}: {split}")
        plot_per_class(report["per_class_recall"], plots / f"per_class_recall_{split}.png",
                       f"{title}: {split} recall")
    return metrics


def write_sub_model_history(rows: list[dict[str, Any]], out_dir: Path, title: str) -> None:
    """``sub_models.csv`` and ``plots/sub_model_curves.png`` from an estimator's network
    rows; with no rows, neither file is left in ``out_dir``."""
    table, plot = Path(out_dir) / SUB_MODELS_FILE, Path(out_dir) / "plots" / SUB_MODELS_PLOT
    if not rows:
        table.unlink(missing_ok=True)
        plot.unlink(missing_ok=True)
        return
    write_history_csv(rows, table)
    plot_sub_model_curves(rows, plot, title)
