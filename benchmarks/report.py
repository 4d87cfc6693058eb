"""What every benchmark's results file carries: the command, the commit, the machine.

Benchmarks write ``benchmarks/results/<name>.json`` (everything measured) and ``<name>.md``
(the same for people). Timings belong to the machine that measured them, so each file
names the CPU, its cores, torch and its thread count and whether bfloat16 ran natively.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from components.machine import cpu_model, git_commit, machine_facts

RESULTS_DIR = Path(__file__).resolve().parent / "results"
__all__ = ["RESULTS_DIR", "cpu_model", "git_commit", "machine_facts", "results_name"]


def results_name(value: str) -> str:
    """A benchmark's ``--name``: the stem of its two results files, so letters, digits, '-'
    and '_' only (a '/' or '..' would write outside ``benchmarks/results``). An argparse
    ``type``: a bad name ends the command with one line naming the rule."""
    if not value or not all(char.isalnum() or char in "-_" for char in value):
        raise argparse.ArgumentTypeError(f"{value!r}: use letters, digits, '-' and '_'")
    return value


def pct(value: Any) -> str:
    """``0.7030`` -> ``70.30 %``; missing or NaN -> ``n/a``."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.2f} %"


def write_results(name: str, payload: dict[str, Any], markdown: str,
                  out_dir: Path = RESULTS_DIR) -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.json`` and ``<name>.md``; returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{name}.json", out_dir / f"{name}.md"
    json_path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    md_path.write_text(markdown.rstrip() + "\n")
    return json_path, md_path


def publish(name: str, payload: dict[str, Any], lines: list[str],
            out_dir: Path = RESULTS_DIR) -> None:
    """Write the results (see :func:`write_results`), name the files and print the report."""
    for path in write_results(name, payload, "\n".join(lines), out_dir):
        print(f"wrote {path}")
    print("\n".join(lines))
