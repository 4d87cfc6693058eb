"""What every stage entry point shares: params loading, quiet logs, clean errors.

Telemetry is off from the first import of ``components`` (see components/__init__.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from components.errors import ConfigError, FeropsError, one_line
from components.isa import CAPS, NATIVE

# Libraries that log their internals at INFO; users want the stages' own lines.
NOISY_LOGGERS: tuple[str, ...] = ("great_expectations", "alembic", "mlflow", "optuna", "dvc")


def stage_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the ``--params`` option every stage takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--params", default="params.yaml", help="params file (default: %(default)s)"
    )
    return parser


# Set when this process was started as a command (``python -m pipelines.<stage>``, ``ferops``):
# only then may a stage replace the process to lift the instruction-set caps.
_started_as_command = False


def run_cli(body: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a CLI body; a user error prints one line on stderr and exits 2, no traceback.

    ``argv`` None means the process's own command line: this process is a command.
    """
    global _started_as_command
    _started_as_command = _started_as_command or argv is None
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return body(argv)
    except FeropsError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def isa_capped() -> bool:
    """Whether this process runs under the instruction-set caps (:mod:`components.isa`)."""
    return os.environ.get(NATIVE) != "1"


def require_isa(isa: str, module: str) -> None:
    """Fail, saying how to fix it, when params ask for ``isa: native`` in a process that runs
    under the AVX2 cap: training on silently would give capped (slower) results."""
    if isa == "native" and isa_capped():
        raise ConfigError(
            f"train.isa: native, but this process runs under the AVX2 cap; run the stage as "
            f"`python -m {module}` (it restarts itself without the cap), or set {NATIVE}=1 "
            "before Python starts")


def relaunch_for_arch(params: dict[str, Any], arch: str, module: str,
                     argv: Sequence[str] | None) -> None:
    """:func:`relaunch_at_isa` with the ``train.isa`` that ``params`` resolve to for
    ``arch`` (the tune and train stages' one call)."""
    from components.config import section
    from components.training.config import resolve_config

    relaunch_at_isa(resolve_config(section(params, "train"), arch, None)[0].isa, module, argv)


def relaunch_at_isa(isa: str, module: str, argv: Sequence[str] | None) -> None:
    """Restart this stage without the instruction-set caps when its params ask for
    ``isa: native``; return when nothing needs doing.

    The caps are environment variables the numeric libraries read once, when they load, and
    every ``pipelines`` process has set them before it can read its params; so the one way to
    lift them is a new process. It replaces this one (``exec``: the same PID, so DVC and
    torchrun wait on it as before) by ``python -m <module> <argv>`` with
    ``FEROPS_NATIVE_ISA=1`` and the caps removed. Only a process started as a command is
    replaced; a call from other Python code fails with a ConfigError saying how to run it.
    """
    if isa != "native" or not isa_capped():
        return
    if not _started_as_command:
        require_isa(isa, module)
    logging.getLogger(module).info("train.isa: native: restarting without the AVX2 cap")
    capped = {variable for variable, _ in CAPS.values()}
    env = {key: value for key, value in os.environ.items() if key not in capped}
    env[NATIVE] = "1"
    args = list(sys.argv[1:] if argv is None else argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", module, *args], env)
