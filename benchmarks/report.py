"""What every benchmark's results file carries: the command, the commit, the machine.

Benchmarks write ``benchmarks/results/<name>.json`` (everything measured) and ``<name>.md``
(the same for people). Timings belong to the machine that measured them, so each file
names the CPU, its cores, torch and its thread count and whether bfloat16 ran natively.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts() -> dict[str, Any]:
    """CPU, cores, torch and its threads, native bf16: what a reader needs to compare timings."""
    import torch

    from components.training.trainer import native_bf16

    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "native_bf16": native_bf16(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def git_commit(root: Path) -> str | None:
    """The checked-out commit (with ``-dirty`` when tracked files differ), or None."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty.strip() else "")


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
