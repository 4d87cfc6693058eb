"""``ferops registry``: register trained runs, promote a champion per task, roll back.

    python -m pipelines.registry register [--train artifacts/train] [--data artifacts/preprocess]
    python -m pipelines.registry promote [--task image] [--version N] [--dry-run]
        [--report FILE] [--register] [--refused-ok]
    python -m pipelines.registry rollback --task image
    python -m pipelines.registry status [--task image]
    python -m pipelines.registry reproduce --task image [--version N] [--tolerance 0]

The store is ``MLFLOW_TRACKING_URI`` (a server in CI) or the project's ``mlflow.db``.
``promote`` prints a markdown report and exits 0 when promoted or unchanged, 3 when the gate
refused (every task refused, when ``--task`` is omitted), 2 on errors; ``--refused-ok``
makes a refusal exit 0 for the DVC stage, still printing the report. ``reproduce`` rebuilds a
version (the champion by default) from its lineage and exits 0 when the rebuilt model scores
what was registered, 3 when it does not, 2 when the lineage is incomplete.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from pipelines._common import run_cli, stage_parser

log = logging.getLogger("pipelines.registry")


def _parser() -> argparse.ArgumentParser:
    parser = stage_parser(__doc__.splitlines()[0])
    # Each subcommand also accepts --params after its name; SUPPRESS keeps the outer value.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--params", default=argparse.SUPPRESS, help="params file")
    commands = parser.add_subparsers(dest="command", required=True)

    reg = commands.add_parser("register", parents=[common], help="register trained runs")
    _add_run_folders(reg)
    reg.add_argument("--task", action="append", help="only this task (repeatable)")

    pro = commands.add_parser("promote", parents=[common], help="gate and promote the champion")
    pro.add_argument("--task", help="task to promote (default: every registered task)")
    pro.add_argument("--version", help="judge this version instead of the best candidate")
    pro.add_argument("--dry-run", action="store_true", help="judge and report, change nothing")
    pro.add_argument("--rejudge", action="store_true",
                     help="judge again versions already refused against the champion "
                     "(refusals are sticky until the champion changes, e.g. after a "
                     "loosened registry policy)")
    pro.add_argument("--report", type=Path, help="also write the markdown report here")
    pro.add_argument("--register", action="store_true", help="register run folders first")
    pro.add_argument("--refused-ok", action="store_true",
                     help="exit 0 when the gate refuses (DVC stage); the report still says so")
    _add_run_folders(pro)

    back = commands.add_parser("rollback", parents=[common],
                               help="make the previous champion the champion again")
    back.add_argument("--task", required=True)
    back.add_argument("--report", type=Path, help="also write the markdown report here")

    stat = commands.add_parser("status", parents=[common], help="aliases and versions")
    stat.add_argument("--task")

    again = commands.add_parser("reproduce", parents=[common],
                                help="rebuild a version from its lineage and compare")
    again.add_argument("--task", required=True)
    again.add_argument("--version", help="version to rebuild (default: the champion)")
    again.add_argument("--tolerance", type=float, default=0.0,
                       help="largest accepted absolute difference per test metric "
                       "(default 0: CPU runs with the default settings are deterministic)")
    again.add_argument("--report", type=Path, help="also write the markdown report here")
    return parser


def _add_run_folders(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train", type=Path, default=Path("artifacts/train"),
                        help="folder of run folders (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=Path("artifacts/preprocess"),
                        help="preprocessed arrays, to fingerprint test data (default: %(default)s)")
    parser.add_argument("--archs-from-params", action="store_true",
                        help="only the run folders of the params' train.architectures "
                        "(the DVC stage: other folders may be left from earlier lists)")


def _body(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    # Imported once a command runs, so ``--help`` answers without loading MLflow.
    from components.config import load_params
    from registry.policy import load_policy
    from registry.promote import rollback
    from registry.stages import (
        params_architectures,
        promote_exit_code,
        promote_stage,
        register_stage,
        registry_client,
        status_report,
    )

    params = load_params(args.params)
    client = registry_client()
    archs = params_architectures(params) if getattr(args, "archs_from_params", False) else None
    if args.command == "register":
        done = register_stage(params, args.train, args.data, client,
                              tuple(args.task) if args.task else None, archs)
        for r in done:
            print(f"{r.model_name} v{r.version}: {r.arch} (run {r.run_id})"
                  f"{'' if r.created else ' already registered'}")
        return 0
    if args.command == "promote":
        results = promote_stage(
            params, client, task=args.task, version=args.version, dry_run=args.dry_run,
            train_dir=args.train if args.register else None, data_dir=args.data,
            architectures=archs, rejudge=args.rejudge,
        )
        _emit("\n".join(r.report for r in results), args.report)
        return promote_exit_code(results, args.refused_ok)
    if args.command == "rollback":
        result = rollback(client, args.task, load_policy(params))
        _emit(result.report, args.report)
        return 0
    if args.command == "reproduce":
        return _reproduce(args, client, load_policy(params))
    print(status_report(client, load_policy(params), args.task))
    return 0


def _reproduce(args: argparse.Namespace, client, policy) -> int:
    from components.tracking.store import project_root
    from registry.reproduce import EXIT_INCOMPLETE, LineageIncomplete, reproduce

    try:
        outcome = reproduce(client, policy.model_name(args.task), args.version,
                            project_root(), args.tolerance)
    except LineageIncomplete as exc:
        print(f"error: lineage incomplete: {exc}")
        return EXIT_INCOMPLETE
    _emit(outcome.report(), args.report)
    return outcome.exit_code


def _emit(report: str, path: Path | None) -> None:
    print(report)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m pipelines.registry`` and ``ferops registry``."""
    return run_cli(_body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
