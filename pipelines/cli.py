"""The ``ferops`` command: one entry point over the stages and tools.

Each subcommand is a thin wrapper over a ``pipelines`` module or a component, so what the CLI
does and what ``dvc repro`` does are the same code.
"""

from __future__ import annotations

import argparse
import importlib
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from components.config import build_config, load_params, section
from pipelines._common import run_cli

STAGES: tuple[str, ...] = ("ingest", "validate", "augment", "preprocess", "train", "evaluate")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ferops", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="render, ingest and validate datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    synth = data_commands.add_parser("synth", help="render the synthetic RGB-D + clip default")
    synth.add_argument("--params", default="params.yaml")
    synth.add_argument("--out", default=None, help="output folder (default: params synthetic.out)")
    validate = data_commands.add_parser(
        "validate", help="ingest a source and validate it (report duplicates, blanks, leaks)"
    )
    validate.add_argument("--params", default="params.yaml")
    validate.add_argument("--source", default=None, help="source name (default: params ingest)")
    validate.add_argument("--path", default=None, help="raw data path (default: params ingest)")
    validate.add_argument("--ferplus", default=None, help="FER+ fer2013new.csv (fer2013 only)")
    validate.add_argument("--out", default=None, help="report folder (default: a temp folder)")

    stage = commands.add_parser("stage", help="run one pipeline stage as dvc.yaml does")
    stage.add_argument("name", choices=STAGES)
    stage.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the stage")
    return parser


def _body(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "stage":
        module = importlib.import_module(f"pipelines.{args.name}")
        return module.main(args.args)
    if args.data_command == "synth":
        return _synth(args)
    return _validate(args)


def _synth(args: argparse.Namespace) -> int:
    from components.data.synthetic import SyntheticConfig, generate

    cfg = SyntheticConfig.from_params(section(load_params(args.params), "synthetic"))
    summary = generate(cfg, Path(args.out) if args.out else None)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from components.data.sources import IngestConfig
    from components.validation import validate_manifest
    from components.validation.config import validate_config
    from pipelines.ingest import run_ingest

    params = load_params(args.params) if Path(args.params).exists() else {}
    ingest_values = dict(params.get("ingest", {}))
    overrides = {"source": args.source, "path": args.path, "ferplus": args.ferplus}
    ingest_values.update({k: v for k, v in overrides.items() if v is not None})
    if args.source and not args.ferplus:
        ingest_values["ferplus"] = None
    ingest_cfg = build_config(IngestConfig, ingest_values, where="ingest")
    validate_cfg = validate_config(params.get("validate", {}))
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="ferops-validate-"))
    manifest = run_ingest(ingest_cfg, out / "ingest")
    result = validate_manifest(
        manifest, validate_cfg, out / "validate", source=str(ingest_cfg.path)
    )
    print(result.paths["summary"].read_text())
    print(f"report: {result.paths['report']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point."""
    return run_cli(_body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
