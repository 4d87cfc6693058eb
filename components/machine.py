"""Facts about the machine and the checkout that every measured number carries.

Timings belong to the machine that measured them and results to the commit that produced
them; benchmarks and the claims pipeline record both with these helpers.
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The one reader of /proc/cpuinfo lives beside the instruction-set caps, which need the
# CPU's flags before any library loads.
from components.isa import CPUINFO, cpuinfo_field


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    return cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_generation(cpuinfo: Path = CPUINFO) -> str | None:
    """``family F model M`` of the first CPU (None where /proc/cpuinfo lacks them).

    Clouds name very different CPUs alike ("AMD EPYC" covers chips with and without AVX-512
    and bf16 units), and a timing means little without knowing which one ran it."""
    family, model = cpuinfo_field("cpu family", cpuinfo), cpuinfo_field("model", cpuinfo)
    if family is None or model is None:
        return None
    return f"family {family} model {model}"


def cpu_vector_isa(cpuinfo: Path = CPUINFO) -> str | None:
    """The widest SIMD level the CPU offers (``AVX-512``, ``AVX2`` or ``below AVX2``; None
    without /proc/cpuinfo): what decides which kernels a CPU's float32 training runs, and so
    how a width's speed compares across machines (``benchmarks/results/train_width_*.md``)."""
    flags = cpuinfo_field("flags", cpuinfo)
    if flags is None:
        return None
    present = set(flags.split())
    if "avx512f" in present:
        return "AVX-512"
    return "AVX2" if "avx2" in present else "below AVX2"


def machine_facts() -> dict[str, Any]:
    """CPU (its name, generation and widest vectors), cores, torch and its threads, native
    bf16 (the CPU's bf16 flags, and whether bf16 beats float32 here: AMX, or AVX512-BF16 on
    AMD), the instruction set torch's kernels run at (AVX2 under the pipelines' cap,
    :mod:`components.isa`): what a reader needs to compare timings."""
    import torch

    from components.training.trainer import bf16_pays_off, cpu_bf16_flags, native_bf16

    return {
        "cpu": cpu_model(),
        "cpu_generation": cpu_generation(),
        "cpu_vector_isa": cpu_vector_isa(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "native_bf16": native_bf16(),
        "cpu_bf16_flags": sorted(cpu_bf16_flags()),
        "bf16_pays_off": bf16_pays_off(),  # what train.precision: auto takes on the CPU
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def git_commit(root: Path, ignore: Sequence[str] = (), *, mark_dirty: bool = True) -> str | None:
    """The checked-out commit (with ``-dirty`` when tracked files differ), or None outside a
    repository or without git.

    ``ignore``: paths whose changes do not count as dirty (a pipeline's own outputs that
    the running command is rewriting, such as the claims records and lock file).
    ``mark_dirty=False`` gives the bare hash, for fields that must name a real commit (the
    MLflow UI links ``mlflow.source.git.commit``).
    """
    excludes = [f":(exclude){path}" for path in ignore]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip()
        if not mark_dirty:
            return commit or None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no",
                                "--", ".", *excludes],
                               cwd=root, capture_output=True, text=True, check=True,
                               timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty.strip() else "")
