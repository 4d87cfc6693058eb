"""DVC stage ``evaluate``: score every trained model on the clean and occluded test splits.

    python -m pipelines.evaluate [--params params.yaml] [--train artifacts/train]
        [--data artifacts/preprocess] [--out artifacts/evaluate]

Writes ``comparison.json`` (flat ``<arch>/<split>/<metric>`` keys for ``dvc metrics``),
``comparison.md`` (a table for people) and ``accuracy_vs_occlusion.png`` (a line per
architecture). Models are rebuilt from their run folders and re-scored, so the comparison
always reflects the current preprocessed test data.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from components.config import load_params
from components.data.manifest import DEDUP_SPLIT
from components.errors import DataError
from components.jsonio import write_json
from components.models import load_trained
from components.training.data import occlusion_percent, task_folder
from components.training.plots import plot_occlusion_curves
from components.training.report import SCALARS
from components.training.run import score, test_splits
from pipelines._common import run_cli, stage_parser

log = logging.getLogger("pipelines.evaluate")

DEFAULT_OUT = "artifacts/evaluate"


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


def run_external(args: Any, params: dict[str, Any]) -> int:
    """``--model``: score a model on another labelled set through its serving chain."""
    import tempfile

    from components.data.sources import IngestConfig, ingest
    from components.serving.external import evaluate_external, write_external
    from pipelines.predict import build_predictor, request_frame

    if not args.source or not args.path:
        raise DataError("--model needs --source and --path: the labelled set to score on")
    if args.log and not str(args.model).startswith("models:/"):
        raise DataError(f"--log: {args.model} is not a registered version (models:/...)")
    labels = None
    if args.labels:
        import yaml

        labels = yaml.safe_load(args.labels)
        if not isinstance(labels, dict):
            raise DataError(f"--labels: expected a mapping such as '{{table: labels.csv}}', "
                            f"got {args.labels!r}")
    cfg = IngestConfig(source=args.source, path=args.path, labels=labels)
    with tempfile.TemporaryDirectory(prefix="ferops-external-") as store:
        manifest = ingest(cfg, store)
        predictor = build_predictor(args.model, "torch", None, Path(args.data), params)
        result = evaluate_external(predictor, manifest,
                                   request=lambda names: request_frame(predictor, names))
    name = args.name or Path(args.path).name
    out = Path(args.out if args.out != DEFAULT_OUT else f"artifacts/external/{name}")
    report = write_external(result, out, name, args.model)
    print(report.read_text())
    if args.log:
        from mlflow import MlflowClient

        from components.tracking.store import configure_tracking
        from registry.external import log_external

        scores = {k: result.report[k] for k in ("accuracy", "uar", "macro_f1")}
        model, version = log_external(MlflowClient(configure_tracking()), args.model, name,
                                      scores, result.n_scored)
        print(f"tagged {model} v{version} with external.{name}.* (the gate does not use them)")
    return 0


def _body(argv: Sequence[str] | None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--train", default="artifacts/train", help="folder of run folders")
    parser.add_argument("--data", default="artifacts/preprocess", help="preprocessed arrays")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder")
    external = parser.add_argument_group(
        "another labelled set", "with --model: score that model on a set it never saw, "
        "through its serving chain (no DVC needed); writes report.md, metrics.json and "
        "confusion.png under artifacts/external/<name> unless --out")
    external.add_argument("--model", default=None, help="serving model URI or run folder")
    external.add_argument("--source", default=None, help="image_folder (or another source)")
    external.add_argument("--path", default=None, help="the set's folder")
    external.add_argument("--labels", default=None,
                          help="the ingest.labels mapping for a flat folder, e.g. "
                               "'{table: labels.csv}'")
    external.add_argument("--name", default=None, help="the set's name (default: folder name)")
    external.add_argument("--log", action="store_true",
                          help="tag the registered version (models:/...) with the scores and "
                               "add them to its model card; the gate never uses them")
    args = parser.parse_args(argv)
    if args.model is not None:
        return run_external(args, load_params(args.params) if Path(args.params).exists()
                            else {})
    train_dir = Path(args.train)
    if not train_dir.is_dir():
        raise DataError(f"{train_dir}: no trained models (run the train stage first)")
    flat = evaluate_stage(load_params(args.params), train_dir, Path(args.data), Path(args.out))
    print((Path(args.out) / "comparison.md").read_text())
    log.info("%d scores written to %s", len(flat), args.out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m pipelines.evaluate``."""
    return run_cli(_body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
