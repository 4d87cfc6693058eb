"""``ferops registry``: register trained runs, promote a champion per task, roll back.

    python -m pipelines.registry register [--train artifacts/train] [--data artifacts/preprocess]
    python -m pipelines.registry promote [--task image] [--version N] [--dry-run]
        [--report FILE] [--register] [--refused-ok]
    python -m pipelines.registry rollback --task image
    python -m pipelines.registry status [--task image]

The store is ``MLFLOW_TRACKING_URI`` (a server in CI) or the project's ``mlflow.db``.
``promote`` prints a markdown report and exits 0 when promoted or unchanged, 3 when the gate
refused (every task refused, when ``--task`` is omitted), 2 on errors; ``--refused-ok``
makes a refusal exit 0 for the DVC stage, still printing the report.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from components.config import load_params
from components.errors import DataError
from components.tracking.store import check_reachable, configure_tracking
from pipelines._common import run_cli, stage_parser
from registry.lock import held_lock, lock_name, owner_is_dead
from registry.policy import GatePolicy, load_policy
from registry.promote import PromotionResult, RollbackResult, promote, rollback
from registry.register import Registered, register_candidates
from registry.report import alias_line
from registry.versions import aliases_of, list_versions, registered_tasks, version_score

log = logging.getLogger("pipelines.registry")


def registry_client() -> MlflowClient:
    """A client on ``MLFLOW_TRACKING_URI`` or the project store, checked to answer.

    Raises:
        TrackingError: a tracking server at the URI does not answer.
    """
    uri = configure_tracking()
    check_reachable(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def register_stage(params: dict[str, Any], train_dir: Path, data_dir: Path | None,
                   client: MlflowClient, tasks: tuple[str, ...] | None = None,
                   architectures: Sequence[str] | None = None) -> list[Registered]:
    """Register every run folder's model (see :func:`registry.register_candidates`)."""
    return register_candidates(train_dir, data_dir, client, load_policy(params), tasks=tasks,
                               architectures=architectures)


def params_architectures(params: dict[str, Any]) -> list[str]:
    """``train.architectures`` of the params: the run folders the pipeline owns now.

    Raises:
        DataError: the params have no such list.
    """
    archs = (params.get("train") or {}).get("architectures")
    if not isinstance(archs, list) or not archs:
        raise DataError("--archs-from-params: params have no train.architectures list")
    return [str(a) for a in archs]


def promote_stage(
    params: dict[str, Any], client: MlflowClient, *, task: str | None = None,
    version: str | None = None, dry_run: bool = False, train_dir: Path | None = None,
    data_dir: Path | None = None, architectures: Sequence[str] | None = None,
    rejudge: bool = False,
) -> list[PromotionResult]:
    """Promote one task, or every task with registered candidates; register first when
    ``train_dir`` is given.

    Raises:
        DataError: no task has registered versions, or ``version`` without ``task``.
    """
    policy = load_policy(params)
    if version is not None and task is None:
        raise DataError("--version needs --task (versions are numbered per task)")
    if train_dir is not None:
        register_candidates(train_dir, data_dir, client, policy,
                            tasks=(task,) if task else None, architectures=architectures)
    tasks = [task] if task else [
        t for t in registered_tasks(client, policy.model_prefix)
        if list_versions(client, policy.model_name(t))
    ]
    if not tasks:
        raise DataError(f"no registered models named {policy.model_prefix}-<task>; run "
                        "`ferops registry register` (or promote --register) first")
    return [promote(client, t, policy, dry_run, version=version, rejudge=rejudge)
            for t in tasks]


def promote_exit_code(results: list[PromotionResult], refused_ok: bool = False) -> int:
    """3 when every task was refused (and refusals are not ok), else 0."""
    if results and not refused_ok and all(r.exit_code == 3 for r in results):
        return 3
    return 0


def status_report(client: MlflowClient, policy: GatePolicy, task: str | None = None) -> str:
    """Markdown: per task, the aliases and a table of versions with their scores."""
    tasks = [task] if task else [
        t for t in registered_tasks(client, policy.model_prefix)
        if list_versions(client, policy.model_name(t))
    ]
    if not tasks:
        return f"No registered models named {policy.model_prefix}-<task>.\n"
    metric = policy.primary_metric
    parts = []
    for name_task in tasks:
        name = policy.model_name(name_task)
        versions = list_versions(client, name)
        if not versions:
            raise DataError(f"{name}: no registered versions")
        aliases = aliases_of(client, name)
        by_version: dict[str, list[str]] = {}
        for alias, number in aliases.items():
            by_version.setdefault(number, []).append(alias)
        lines = [f"## {name}", "", alias_line(aliases), ""]
        held = held_lock(client, name)
        if held is not None:
            owner, age_s = held
            dead = " (its process is gone: the next promotion breaks it)" \
                if owner_is_dead(owner) else ""
            lines += [f"{lock_name(name)} held by {owner} for {age_s:.0f} s; stale after "
                      f"{policy.lock_ttl_s:.0f} s{dead}", ""]
        lines += [f"| version | architecture | {metric} | aliases | state |", "|---" * 5 + "|"]
        for mv in versions:
            score = version_score(mv)
            state = "rolled back" if score.rolled_back else "retired" if score.retired else ""
            value = score.score(metric)
            lines.append(f"| v{mv.version} | {score.arch} | "
                         f"{f'{value:.4f}' if value is not None else 'n/a'} | "
                         f"{', '.join(sorted(by_version.get(str(mv.version), [])))} | {state} |")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


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
        result: RollbackResult = rollback(client, args.task, load_policy(params))
        _emit(result.report, args.report)
        return 0
    print(status_report(client, load_policy(params), args.task))
    return 0


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
