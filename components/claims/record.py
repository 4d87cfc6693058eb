"""One arm's measurement record: the few numbers the report needs, kept in git.

An arm trains for minutes to hours; its weights and evaluate folder are scratch under
``claims/artifacts`` (ignored, lost with the machine). What the report reads is distilled
here into ``claims/measured/<arm>/s<seed>.json``: the arm's flat metrics (every split and bin
of ``comparison.json``), the clean-test confusion counts (per-class recall, claim 13's
within-group confusion), the hierarchical model's groups and the epochs planned and run.
It is a DVC output with ``cache: false``, so git carries it: a fresh clone sees the finished
arms as up to date (their data stages re-run and give the same bytes) and a long experiment
set grows across sessions and machines. The arm's cost (CPU seconds, machine) is a timing,
so it lives beside it in ``s<seed>.cost.json``, never in the record.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from components.errors import DataError

RECORDS = Path("claims/measured")


def record_path(arm: str, seed: int) -> Path:
    """``claims/measured/<arm>/s<seed>.json``."""
    return RECORDS / arm / f"s{seed}.json"


def cost_path(arm: str, seed: int) -> Path:
    """``claims/measured/<arm>/s<seed>.cost.json`` (a timing report: CPU seconds, machine)."""
    return RECORDS / arm / f"s{seed}.cost.json"


def build_record(evaluate_dir: Path, train_metrics: dict[str, Any], arch: str,
                 epochs_planned: int | None) -> dict[str, Any]:
    """The record of one arm's run from its evaluate folder and its training metrics."""
    flat = json.loads((evaluate_dir / "comparison.json").read_text())
    prefix = f"{arch}/"
    metrics = {key.removeprefix(prefix): value for key, value in sorted(flat.items())
               if key.startswith(prefix) and isinstance(value, int | float)}
    predictions = evaluate_dir / "predictions" / f"{arch}.json"
    rows = json.loads(predictions.read_text()) if predictions.is_file() else []
    groups = evaluate_dir / "groups.json"
    return {
        "arch": arch,
        "metrics": metrics,
        "test_confusion": confusion_counts(rows),
        "groups": json.loads(groups.read_text())["groups"] if groups.is_file() else None,
        "epochs_planned": epochs_planned,
        "epochs_run": train_metrics.get("epochs_run"),
    }


def confusion_counts(rows: list[dict[str, str]]) -> dict[str, dict[str, int]]:
    """``{actual: {predicted: count}}`` from ``[{actual, predicted}]`` rows, sorted."""
    pairs = Counter((row["actual"], row["predicted"]) for row in rows)
    out: dict[str, dict[str, int]] = {}
    for (actual, predicted), count in sorted(pairs.items()):
        out.setdefault(actual, {})[predicted] = count
    return out


def class_recall(confusion: dict[str, dict[str, int]], label: str) -> float | None:
    """Recall of ``label`` (None without test samples of it)."""
    row = confusion.get(label) or {}
    total = sum(row.values())
    return row.get(label, 0) / total if total else None


def within_group_confusion(confusion: dict[str, dict[str, int]],
                           groups: list[list[str]]) -> float | None:
    """Among test samples whose class shares a group with others, the share predicted as
    another class of the same group (claim 13: grouping should lower it)."""
    group_of = {label: i for i, group in enumerate(groups) if len(group) > 1 for label in group}
    grouped = confused = 0
    for actual, row in confusion.items():
        if actual not in group_of:
            continue
        grouped += sum(row.values())
        confused += sum(n for predicted, n in row.items()
                        if predicted != actual and group_of.get(predicted) == group_of[actual])
    return confused / grouped if grouped else None


def planned_epochs(params: dict[str, Any], arch: str) -> int | None:
    """Epochs the arm's params plan for ``arch`` (its override, else ``train.epochs``)."""
    train = (params or {}).get("train") or {}
    own = (train.get("overrides") or {}).get(arch) or {}
    value = own.get("epochs", train.get("epochs"))
    return int(value) if value is not None else None


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file's object, or None when the file does not exist.

    Raises:
        DataError: the file is not a JSON object (a hand edit or a cut-off write), naming
            it, so the report does not end in a decoder's traceback.
    """
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error}); restore it from git or write it "
                        "again with the command that made it") from error
    if not isinstance(value, dict):
        raise DataError(f"{path}: expected a JSON object, found {type(value).__name__}")
    return value
