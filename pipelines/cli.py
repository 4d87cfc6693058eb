"""The ``ferops`` command: one entry point over the stages and tools.

Each subcommand is a thin wrapper over a ``pipelines`` module or a component, so what the CLI
does and what ``dvc repro`` does are the same code.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from components.config import build_config, load_params, section
from pipelines._common import run_cli

STAGES: tuple[str, ...] = (
    "ingest", "validate", "augment", "preprocess", "tune", "train", "evaluate"
)
# Top-level shortcuts to a pipelines module's own CLI: `ferops tune --arch X`, `ferops ui`.
SHORTCUTS: dict[str, str] = {
    "tune": "tune the hyperparameters of one architecture with Optuna",
    "train": "train one architecture (torchrun-compatible)",
    "evaluate": "score every trained model on clean and occluded test splits",
    "ui": "start the MLflow UI on the project's tracking store",
    "registry": "register candidates, promote the champion through aliases, roll back",
    "predict": "label the faces in photos with a registered or logged model",
    "export": "export a model (ONNX) for runtimes without torch",
    "claims": "the patents' claims: write claims/dvc.yaml, run an arm, write the report",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ferops", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="render, ingest and validate datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    synth = data_commands.add_parser("synth", help="render the synthetic RGB-D + clip default")
    synth.add_argument("--params", default="params.yaml")
    synth.add_argument("--out", default=None, help="output folder (default: params synthetic.out)")
    synth.add_argument("--if-stale", action="store_true",
                       help="render only when the folder is missing or holds other settings")
    validate = data_commands.add_parser(
        "validate", help="ingest a source and validate it (report duplicates, blanks, leaks)"
    )
    validate.add_argument("--params", default="params.yaml")
    validate.add_argument("--source", default=None, help="source name (default: params ingest)")
    validate.add_argument("--path", default=None, help="raw data path (default: params ingest)")
    validate.add_argument("--ferplus", default=None, help="FER+ fer2013new.csv (fer2013 only)")
    validate.add_argument("--out", default=None, help="report folder (default: a temp folder)")

    recipe = commands.add_parser(
        "recipe", help="list, show or write the named recipes (params composed from conf/)"
    )
    recipe_commands = recipe.add_subparsers(dest="recipe_command", required=True)
    recipe_commands.add_parser("list", help="the recipes in conf/recipe/")
    for verb, text in (("show", "print the composed params"),
                       ("write", "write the composed params (default: params.yaml)")):
        sub = recipe_commands.add_parser(verb, help=text)
        sub.add_argument("name", help="recipe name (conf/recipe/<name>.yaml)")
        sub.add_argument("--set", "-S", dest="overrides", action="append", default=[],
                         metavar="KEY=VALUE", help="a Hydra override, as dvc exp run -S")
        if verb == "write":
            sub.add_argument("--out", type=Path, default=Path("params.yaml"))

    for name, help_text in SHORTCUTS.items():
        shortcut = commands.add_parser(name, help=help_text, add_help=False)
        shortcut.add_argument("args", nargs=argparse.REMAINDER)

    stage = commands.add_parser("stage", help="run one pipeline stage as dvc.yaml does")
    stage.add_argument("name", choices=STAGES)
    stage.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the stage")
    return parser


def _delegate(argv: list[str]) -> int | None:
    """Hand ``ferops <shortcut> ...`` / ``ferops stage <name> ...`` to the module's own CLI.

    Done before argparse so options such as ``--help`` and ``--arch`` reach the module intact.
    """
    if argv and argv[0] in SHORTCUTS:
        return _as_subcommand(f"ferops {argv[0]}", argv[0], argv[1:])
    if len(argv) >= 2 and argv[0] == "stage" and argv[1] in STAGES:
        return _as_subcommand(f"ferops stage {argv[1]}", argv[1], argv[2:])
    return None


def _as_subcommand(prog: str, module: str, argv: list[str]) -> int:
    """Run ``pipelines.<module>``'s CLI with its usage lines saying ``prog`` (argparse takes
    the program name from ``sys.argv[0]``)."""
    saved = sys.argv[0]
    sys.argv[0] = prog
    try:
        return importlib.import_module(f"pipelines.{module}").main(argv)
    finally:
        sys.argv[0] = saved


def _body(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    delegated = _delegate(argv)
    if delegated is not None:
        return delegated
    args = _parser().parse_args(argv)
    if args.command == "recipe":
        return _recipe(args)
    if args.data_command == "synth":
        return _synth(args)
    return _validate(args)


def _recipe(args: argparse.Namespace) -> int:
    from components import recipes

    root = Path.cwd()
    if args.recipe_command == "list":
        print("\n".join(recipes.recipe_names(root)))
    elif args.recipe_command == "show":
        print(recipes.compose_text(root, args.name, args.overrides), end="")
    else:
        out = recipes.write_params(root, args.name, args.out, args.overrides)
        print(f"wrote {out} (recipe {args.name})")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from components.data.synthetic import SyntheticConfig, generate, is_current

    cfg = SyntheticConfig.from_params(section(load_params(args.params), "synthetic"))
    if args.if_stale and is_current(cfg, Path(args.out) if args.out else None):
        return 0
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
