"""How long an up-to-date pipeline takes to say so: ``make repro`` / ``dvc repro`` with
nothing to do.

    python benchmarks/noop_repro.py [--repeats 3]

Runs ``make repro`` once to bring the workspace up to date (not timed; it may train, and it
leaves the stamp of a complete repro), then times ``dvc repro``, ``make repro`` (the stamp's
shortcut) and ``make repro FULL_CHECK=1`` (every hash, as ``dvc repro`` does) with nothing
left to do, ``--repeats`` times each, and reports the medians. None may run a stage; the
output of each timed run is checked for "Running stage". Beside the times it reports what
a no-op costs DVC, read from the lock files: how many files it stats to re-check every
stage's dependencies (a folder counts once per stage that declares it) and how many bytes of
pipeline YAML it parses (DVC loads every ``dvc.yaml`` and ``dvc.lock`` of the project, the
claims pipeline's too). Writes
``benchmarks/results/noop_repro.{json,md}``.
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

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import git_commit, machine_facts, publish  # noqa: E402
from components.errors import DataError  # noqa: E402

COMMANDS: dict[str, list[str]] = {"dvc repro": ["dvc", "repro"], "make repro": ["make", "repro"],
                                  "make repro FULL_CHECK=1": ["make", "repro", "FULL_CHECK=1"]}


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


def dependency_files(lock: Path) -> dict[str, int]:
    """Files DVC re-checks per stage of ``lock`` (its deps' ``nfiles``; a file counts 1)."""
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages") or {}
    return {name: sum(int(dep.get("nfiles") or 1) for dep in stage.get("deps") or [])
            for name, stage in stages.items()}


def pipeline_yaml_bytes(root: Path) -> dict[str, int]:
    """Bytes of every ``dvc.yaml`` / ``dvc.lock`` DVC parses for one command."""
    files = sorted([*root.glob("dvc.yaml"), *root.glob("dvc.lock"),
                    *root.glob("*/dvc.yaml"), *root.glob("*/dvc.lock")])
    return {path.relative_to(root).as_posix(): path.stat().st_size for path in files}


def cost_lines(per_stage: dict[str, int], yaml_bytes: dict[str, int]) -> list[str]:
    """The report's lines on what a no-op makes DVC do."""
    top = sorted(per_stage.items(), key=lambda item: -item[1])[:5]
    return ["", "## What a no-op makes DVC do (from the lock files)", "",
            f"- files stat-ed to re-check the main pipeline's dependencies: "
            f"{sum(per_stage.values()):,} over {len(per_stage)} stages; most: "
            + ", ".join(f"{name} {count:,}" for name, count in top),
            "- pipeline YAML parsed: " + ", ".join(
                f"`{name}` {size / 1024:.0f} KiB" for name, size in yaml_bytes.items())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    command = shlex.join(["python", "benchmarks/noop_repro.py",
                          *(sys.argv[1:] if argv is None else argv)])
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    subprocess.run(["make", "repro"], cwd=REPO_ROOT, check=True, env=env)  # up to date first
    seconds = {name: [timed(cmd) for _ in range(args.repeats)] for name, cmd in COMMANDS.items()}
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    per_stage = dependency_files(REPO_ROOT / "dvc.lock")
    yaml_bytes = pipeline_yaml_bytes(REPO_ROOT)
    payload = {"command": command, "commit": git_commit(REPO_ROOT), "machine": machine_facts(),
               "seconds": seconds, "median_seconds": medians,
               "dependency_files_per_stage": per_stage, "pipeline_yaml_bytes": yaml_bytes}
    machine = payload["machine"]
    lines = ["# An up-to-date pipeline: time to do nothing", "",
             f"- command: `{command}`", f"- commit: `{payload['commit']}`",
             f"- machine: {machine['cpu']}, {machine['cpu_count']} cores", "",
             "| command | median wall seconds | runs |", "|---|---|---|"]
    lines += [f"| `{name}` | {medians[name]:.2f} | "
              f"{', '.join(f'{v:.2f}' for v in seconds[name])} |" for name in COMMANDS]
    lines += ["", "No stage ran in any timed run (checked on the output)."]
    lines += cost_lines(per_stage, yaml_bytes)
    publish("noop_repro", payload, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
