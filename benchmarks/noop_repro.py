"""How long an up-to-date pipeline takes to say so: ``make repro`` / ``dvc repro`` with
nothing to do.

    python benchmarks/noop_repro.py [--repeats 3]

Runs ``dvc repro`` once to bring the workspace up to date (not timed; it may train), then
times ``dvc repro`` and ``make repro`` with nothing left to do, ``--repeats`` times each,
and reports the medians. Both must run no stage; the output of each timed run is checked for
"Running stage". Writes ``benchmarks/results/noop_repro.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import git_commit, machine_facts, publish  # noqa: E402
from components.errors import DataError  # noqa: E402

COMMANDS: dict[str, list[str]] = {"dvc repro": ["dvc", "repro"], "make repro": ["make", "repro"]}


def timed(command: list[str]) -> float:
    """Wall seconds of ``command`` in the project.

    Raises:
        DataError: it failed, or it ran a stage (the workspace was not up to date).
    """
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise DataError(f"{shlex.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    if "Running stage" in done.stdout + done.stderr:
        raise DataError(f"{shlex.join(command)} ran a stage: the workspace was not up to date")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    command = shlex.join(["python", "benchmarks/noop_repro.py",
                          *(sys.argv[1:] if argv is None else argv)])
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    subprocess.run(["dvc", "repro"], cwd=REPO_ROOT, check=True, env=env)  # up to date first
    seconds = {name: [timed(cmd) for _ in range(args.repeats)] for name, cmd in COMMANDS.items()}
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    payload = {"command": command, "commit": git_commit(REPO_ROOT), "machine": machine_facts(),
               "seconds": seconds, "median_seconds": medians}
    machine = payload["machine"]
    lines = ["# An up-to-date pipeline: time to do nothing", "",
             f"- command: `{command}`", f"- commit: `{payload['commit']}`",
             f"- machine: {machine['cpu']}, {machine['cpu_count']} cores", "",
             "| command | median wall seconds | runs |", "|---|---|---|"]
    lines += [f"| `{name}` | {medians[name]:.2f} | "
              f"{', '.join(f'{v:.2f}' for v in seconds[name])} |" for name in COMMANDS]
    lines += ["", "No stage ran in any timed run (checked on the output)."]
    publish("noop_repro", payload, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
