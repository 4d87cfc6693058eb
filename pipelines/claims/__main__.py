"""``python -m pipelines.claims {dag,data,arm,report}`` (also ``ferops claims ...``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pipelines._common import run_cli


def _body(argv: Sequence[str] | None) -> int:
    import argparse

    import pipelines.claims

    parser = argparse.ArgumentParser(description=pipelines.claims.__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("dag", help="write claims/dvc.yaml (and the arms' inputs, "
                        "claims/inputs.json) from claims/params.yaml")
    data = commands.add_parser("data", help="run a data variant's stages")
    data.add_argument("--variant", required=True)
    arm = commands.add_parser("arm", help="train and evaluate one arm with one seed")
    arm.add_argument("--arm", required=True)
    arm.add_argument("--seed", type=int, required=True)
    commands.add_parser("report", help="write claims/report.md from the arms that ran")
    args = parser.parse_args(argv)
    root = Path.cwd()
    if args.command == "dag":
        from pipelines.claims.dag import write_dag

        print(f"wrote {write_dag(root)} and claims/inputs.json")
    elif args.command == "data":
        from pipelines.claims.data import run_data

        run_data(root, args.variant)
    elif args.command == "arm":
        from pipelines.claims.arm import run_arm

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
