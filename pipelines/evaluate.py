"""DVC stage ``evaluate``: score every trained model on the clean and occluded test splits.

    python -m pipelines.evaluate [--params params.yaml] [--train artifacts/train]
        [--data artifacts/preprocess] [--out artifacts/evaluate]

Writes ``comparison.json`` (flat ``<arch>/<split>/<metric>`` keys for ``dvc metrics``),
``comparison.md`` (a table for people) and ``accuracy_vs_occlusion.png`` (a line per
architecture). Models are rebuilt from their run folders and re-scored, so the comparison
always reflects the current preprocessed test data.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from components.errors import DataError
from pipelines._common import run_cli, stage_parser

log = logging.getLogger("pipelines.evaluate")

DEFAULT_OUT = "artifacts/evaluate"


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
                                   request=lambda names: request_frame(predictor, names,
                                                                       crop=args.crop))
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
    parser.add_argument("--manifest", default="artifacts/augment/manifest.parquet",
                        help="augmented manifest: sample attributes (lighting, yaw, occluder "
                        "kind) for the scores by bin; skipped when missing")
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
    external.add_argument("--crop", action="store_true",
                          help="the photos already are face crops (no face detection)")
    external.add_argument("--name", default=None, help="the set's name (default: folder name)")
    external.add_argument("--log", action="store_true",
                          help="tag the registered version (models:/...) with the scores and "
                               "add them to its model card; the gate never uses them")
    args = parser.parse_args(argv)
    from components.config import load_params
    from components.evaluation import evaluate_stage  # torch loads only once a command runs

    if args.model is not None:
        return run_external(args, load_params(args.params) if Path(args.params).exists()
                            else {})
    train_dir = Path(args.train)
    if not train_dir.is_dir():
        raise DataError(f"{train_dir}: no trained models (run the train stage first)")
    flat = evaluate_stage(load_params(args.params), train_dir, Path(args.data), Path(args.out),
                          Path(args.manifest))
    print((Path(args.out) / "comparison.md").read_text())
    log.info("%d scores written to %s", len(flat), args.out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m pipelines.evaluate``."""
    return run_cli(_body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
