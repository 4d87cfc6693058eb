"""The claims pipeline (``claims/dvc.yaml``): the patents' claims measured by the stages.

    python -m pipelines.claims dag                      # (re)write claims/dvc.yaml
    python -m pipelines.claims data --variant NAME      # that variant's data stages
    python -m pipelines.claims arm --arm NAME --seed S  # train + evaluate one arm, one seed
    python -m pipelines.claims report                   # claims/report.md from what ran

``dvc repro claims/dvc.yaml`` runs them all. Every step is the main pipeline's own stage
(``pipelines.ingest`` ... ``pipelines.evaluate``, same CLI) on params composed from a recipe
plus the spec's overrides (``claims/params.yaml``), written beside the outputs; nothing here
loads data or trains by itself. ``report`` also runs on a partial set (the arms not yet run
are listed as such), so a long experiment set can be read while it grows.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines._common import run_cli

if TYPE_CHECKING:
    from components.claims.spec import ClaimsSpec

log = logging.getLogger("pipelines.claims")


def write_dag(root: Path) -> Path:
    """Write ``claims/dvc.yaml`` from the spec; returns its path."""
    from components.claims.dag import DVC_FILE, render
    from components.claims.spec import load_spec

    spec = load_spec(root / "claims" / "params.yaml")
    path = Path(root) / DVC_FILE
    path.write_text(render(spec, raw_inputs(root, spec)), encoding="utf-8")
    return path


def raw_inputs(root: Path, spec: ClaimsSpec) -> dict[str, list[str]]:
    """Variant -> the raw data inside the project its ingest reads (``data`` for the
    synthetic source); data outside the project (FER2013 by path) is named by the params."""
    import yaml

    from components.claims.spec import compose_variant

    found: dict[str, list[str]] = {}
    for name in spec.variants:
        ingest = yaml.safe_load(compose_variant(root, spec, name)).get("ingest") or {}
        path = Path(str(ingest.get("path", "")))
        inside = not path.is_absolute() and ".." not in path.parts and path.parts
        found[name] = [path.parts[0]] if inside else []
    return found


def run_data(root: Path, variant: str) -> None:
    """Run ``variant``'s own data stages through the stages' CLIs."""
    from components.claims.spec import compose_variant, load_spec, own_stages, stage_dirs
    from components.claims.spec import variant_dir as folder
    from components.errors import DataError

    spec = load_spec(root / "claims" / "params.yaml")
    if variant not in spec.variants:
        raise DataError(f"--variant {variant!r}: unknown; declared: {sorted(spec.variants)}")
    params = folder(variant) / "params.yaml"
    params.parent.mkdir(parents=True, exist_ok=True)
    params.write_text(compose_variant(root, spec, variant), encoding="utf-8")
    dirs = stage_dirs(spec, variant)
    commands = {
        "ingest": ["--out", dirs["ingest"]],
        "validate": ["--manifest", dirs["ingest"] / "manifest.parquet", "--out", dirs["validate"]],
        "augment": ["--manifest", dirs["validate"] / "manifest.parquet", "--out", dirs["augment"]],
        "preprocess": ["--manifest", dirs["augment"] / "manifest.parquet",
                       "--out", dirs["preprocess"]],
    }
    for stage in own_stages(spec, variant):
        log.info("claims data %s: %s", variant, stage)
        _stage(stage, ["--params", params, *commands[stage]])


def run_arm(root: Path, arm: str, seed: int) -> dict[str, float]:
    """Train and evaluate one arm with one seed through the stages' CLIs; returns its cost
    (CPU and wall seconds), also written to ``cost.json``."""
    from components.claims.spec import arm_dir, compose_arm, load_spec, stage_dirs
    from components.errors import DataError
    from components.jsonio import write_json

    spec = load_spec(root / "claims" / "params.yaml")
    if arm not in spec.arms:
        raise DataError(f"--arm {arm!r}: unknown; declared: {sorted(spec.arms)}")
    out = arm_dir(arm, seed)
    params = out / "params.yaml"
    params.parent.mkdir(parents=True, exist_ok=True)
    params.write_text(compose_arm(root, spec, arm, seed), encoding="utf-8")
    data = stage_dirs(spec, spec.arms[arm].variant)
    arch = spec.arms[arm].arch
    started, cpu = time.perf_counter(), time.process_time()
    _stage("train", ["--params", params, "--arch", arch, "--data", data["preprocess"],
                     "--out", out / "train" / arch, "--tune-dir", out / "untuned"])
    _stage("evaluate", ["--params", params, "--train", out / "train",
                        "--data", data["preprocess"], "--out", out / "evaluate",
                        "--manifest", data["augment"] / "manifest.parquet"])
    write_groups(out / "train" / arch, out / "evaluate" / "groups.json")
    cost = {"cpu_seconds": round(time.process_time() - cpu, 1),
            "wall_seconds": round(time.perf_counter() - started, 1),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor()}"}
    write_json(out / "cost.json", cost)
    return cost


def write_groups(run_dir: Path, out: Path) -> None:
    """The expression groups of a hierarchical model (claim 13's within-group confusion);
    nothing for a model without groups."""
    from components.jsonio import write_json
    from components.models import load_trained

    if not any((run_dir / name).exists() for name in ("model.pt", "model.pkl")):
        return
    _, classifier = load_trained(run_dir)
    groups = getattr(classifier, "groups_", None)
    if groups:
        write_json(out, {"groups": [list(group) for group in groups]})


def _stage(name: str, argv: list[object]) -> None:
    """Run ``pipelines.<name>``'s CLI; a failing stage stops the claims step."""
    import importlib

    from components.errors import DataError

    code = importlib.import_module(f"pipelines.{name}").main([str(a) for a in argv])
    if code != 0:
        raise DataError(f"claims: stage {name} failed (exit {code}): {argv}")


def _body(argv: Sequence[str] | None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("dag", help="write claims/dvc.yaml from claims/params.yaml")
    data = commands.add_parser("data", help="run a data variant's stages")
    data.add_argument("--variant", required=True)
    arm = commands.add_parser("arm", help="train and evaluate one arm with one seed")
    arm.add_argument("--arm", required=True)
    arm.add_argument("--seed", type=int, required=True)
    commands.add_parser("report", help="write claims/report.md from the arms that ran")
    args = parser.parse_args(argv)
    root = Path.cwd()
    if args.command == "dag":
        print(f"wrote {write_dag(root)}")
    elif args.command == "data":
        run_data(root, args.variant)
    elif args.command == "arm":
        cost = run_arm(root, args.arm, args.seed)
        print(f"{args.arm} seed {args.seed}: {json.dumps(cost)}")
    else:
        from components.claims.report import write_report
        from components.claims.spec import load_spec

        report = write_report(load_spec(root / "claims" / "params.yaml"), root)
        print(report.read_text())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m pipelines.claims``."""
    return run_cli(_body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
