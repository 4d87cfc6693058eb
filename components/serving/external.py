"""A trained model judged on another labelled set, through its own serving chain.

Cross-dataset accuracy is the question FER users ask first. The set is ingested by the same
sources as training data (class folders, a labels table, file-name patterns), every photo
goes through the model's serving chain (detection and alignment, as in production), and
the largest face of each photo is scored against its label. Labels the model does not know
are left out and reported; photos without a detected face are left out of the scores and
reported (``--crop`` takes a set of face crops whole); unreadable photos are skipped and
reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.jsonio import write_json
from components.serving.batch import BatchResult, predict_batch
from components.serving.predictor import Predictor
from components.training.metrics import classification_report
from components.training.plots import plot_confusion


@dataclass
class ExternalResult:
    """Scores on the external set and everything that was left out of them."""

    report: dict[str, Any]
    n_scored: int
    not_in_model: dict[str, int] = field(default_factory=dict)  # dataset label -> rows
    without_face: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # unreadable or refused


def evaluate_external(predictor: Predictor, manifest: pd.DataFrame, request: Any, *,
                      progress: bool = True) -> ExternalResult:
    """Score ``predictor`` on the ``color`` photos of ``manifest`` against its labels.

    ``request`` turns file names into the predictor's request rows (the CLI's reader).
    """
    classes = list(predictor.settings.classes)
    known = manifest["label"].isin(classes)
    not_in_model = manifest.loc[~known, "label"].value_counts().sort_index().to_dict()
    rows = manifest[known]
    files = [str(f) for f in rows["color"]]
    batch: BatchResult = predict_batch(predictor, files, request=request, progress=progress)
    first = batch.faces[batch.faces["face"] == 0].set_index("file") if len(batch.faces) \
        else pd.DataFrame()
    scored = [(f, label) for f, label in zip(files, rows["label"], strict=True)
              if f in first.index]
    proba_columns = [f"p_{c}" for c in classes]
    y_true = np.array([classes.index(label) for _, label in scored], dtype=np.int64)
    y_pred = (first.loc[[f for f, _ in scored], proba_columns].to_numpy().argmax(axis=1)
              if scored else np.zeros(0, np.int64))
    report = classification_report(y_true, y_pred, classes)
    return ExternalResult(report, len(scored), {str(k): int(v) for k, v in not_in_model.items()},
                          batch.without_face, batch.bad)


def write_external(result: ExternalResult, out_dir: Path, name: str, model: str) -> Path:
    """``metrics.json``, ``confusion.png`` and ``report.md`` in ``out_dir``; returns the report."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = result.report
    write_json(out_dir / "metrics.json", {
        "model": model, "set": name, "n_scored": result.n_scored,
        **{k: report[k] for k in ("accuracy", "uar", "macro_f1")},
        "per_class_recall": report["per_class_recall"], "not_in_model": result.not_in_model,
        "without_face": result.without_face, "skipped": dict(result.skipped)})
    classes = list(report["per_class_recall"])
    plot_confusion(report["confusion"], classes, out_dir / "confusion.png", f"{name}: {model}")
    lines = [f"# {model} on {name}", "",
             f"- photos scored: {result.n_scored} (largest face of each)",
             f"- accuracy (WAR) {report['accuracy']:.4f}, UAR {report['uar']:.4f}, "
             f"macro-F1 {report['macro_f1']:.4f}", "",
             "| class | recall |", "|---|---|"]
    lines += [f"| {c} | {'n/a' if r is None else f'{r:.4f}'} |"
              for c, r in report["per_class_recall"].items()]
    lines += ["", f"- labels the model does not know (left out): {result.not_in_model or 'none'}",
              f"- photos without a detected face (left out of the scores; --crop takes "
              f"face crops whole): {len(result.without_face)}",
              f"- photos unreadable or refused by the model's input checks (skipped): "
              f"{len(result.skipped)}"]
    lines += [f"  - {f}: {reason}" for f, reason in result.skipped]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
