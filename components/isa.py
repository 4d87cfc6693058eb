"""One instruction set for every pipeline process, so a stage gives the same bytes on any
x86-64 machine with AVX2.

NumPy, PyTorch, oneDNN and OpenCV pick their kernels at run time from what the CPU offers.
The AVX-512 kernels round differently from the AVX2 ones (NumPy's vectorised ``sin``/``exp``,
a convolution's accumulation order), so the same params rendered and trained on a machine
with AVX-512 and on one without give different bytes: measured on the rendered set, 69 of
2,404 images of a four-subject render differed with NumPy's AVX-512 dispatch on or off. The
pipeline's processes therefore cap every library at AVX2 (x86-64-v3), the newest level
common to the machines the project runs on; a machine without AVX2 still runs everything,
and its bytes may then differ.

The caps are environment variables the libraries read when they load, so
:func:`pin_instruction_set` must run before NumPy, PyTorch or OpenCV is imported: the
``pipelines`` package calls it first thing (every ``python -m pipelines.<stage>`` of
``dvc.yaml``, the ``ferops`` CLI), and worker processes inherit the environment. A value
the user has set is kept (``FEROPS_NATIVE_ISA=1`` lifts every cap, for speed over bytes).
This module imports nothing that would load those libraries.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

# Library -> (environment variable, value capping it at AVX2).
CAPS: dict[str, tuple[str, str]] = {
    "numpy": ("NPY_DISABLE_CPU_FEATURES", "X86_V4 AVX512_ICL AVX512_SPR"),
    "pytorch": ("ATEN_CPU_CAPABILITY", "avx2"),
    "onednn": ("ONEDNN_MAX_CPU_ISA", "AVX2"),
    "opencv": ("OPENCV_CPU_DISABLE", "AVX512-SKX"),  # the wheel's one AVX-512 dispatch group
}
NATIVE = "FEROPS_NATIVE_ISA"

# Caps that must only name features the CPU has: OpenCV prints "Trying to disable unavailable
# CPU feature" on stderr at every import when told to disable one the CPU lacks, which would
# put a second line before a CLI's one-line error. Where the CPU lacks the feature, OpenCV
# cannot dispatch to it anyway, so leaving the cap unset changes no bytes.
NEEDS_FLAG: dict[str, str] = {"opencv": "avx512f"}
CPUINFO = Path("/proc/cpuinfo")


def cpuinfo_field(name: str, cpuinfo: Path = CPUINFO) -> str | None:
    """The value of the first CPU's ``name`` field in Linux ``/proc/cpuinfo`` (``model name``,
    ``vendor_id``, ``flags``), stripped; None where the file or the field does not exist.

    The one reader of that file: the model name in every record, the bf16 flags and vendor
    that decide ``train.precision: auto``, the flags the determinism check reports and the
    OpenCV cap here needs. Only the
    first CPU's block counts (the cores of one machine agree), and a key matches whole
    (``flags`` is not ``vmx flags``)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon and key.strip() == name:
            return value.strip()
    return None


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The first CPU's flags (empty where /proc/cpuinfo does not exist)."""
    return frozenset((cpuinfo_field("flags", cpuinfo) or "").split())


def pin_instruction_set(
    environ: MutableMapping[str, str] | None = None, flags: frozenset[str] | None = None
) -> dict[str, str]:
    """Set each cap of :data:`CAPS` that is not set yet (nothing when ``FEROPS_NATIVE_ISA``
    is ``1``), skipping those of :data:`NEEDS_FLAG` whose feature the CPU lacks (``flags``:
    this CPU's by default); returns the caps in force."""
    env = os.environ if environ is None else environ
    if env.get(NATIVE) == "1":
        return {}
    present = cpu_flags() if flags is None else flags
    for library, (variable, value) in CAPS.items():
        needed = NEEDS_FLAG.get(library)
        if needed is None or needed in present:
            env.setdefault(variable, value)
    return {variable: env[variable] for variable, _ in CAPS.values() if variable in env}


# oneDNN levels below the first with bfloat16 instructions (AVX512_CORE_BF16): under one of
# these caps oneDNN leaves a CPU's own bf16 units unused and bf16 autocast runs emulated.
PRE_BF16_ONEDNN = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                   "AVX512_CORE_VNNI"}


def caps_allow_bf16(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the caps in force leave oneDNN (the convolutions) the CPU's bfloat16
    instructions.

    The pipeline's AVX2 cap takes them away and bf16 autocast then runs emulated, far slower
    than float32 (``benchmarks/results/train_precision_pipeline_isa.md``), so
    ``precision: auto`` must see the cap and not only the CPU's flags. ATen's cap does not
    matter here: with ATen alone at AVX2, bf16 still ran faster than float32.
    """
    env = os.environ if environ is None else environ
    return env.get(CAPS["onednn"][0], "").strip().upper() not in PRE_BF16_ONEDNN


# oneDNN levels with bfloat16 instructions but below AMX (AVX512_CORE_AMX, alias
# AVX10_1_512_AMX): under one of these caps bf16 runs on AVX512-BF16 only (slower than float32
# on the Intel Xeon measured, faster on the AMD EPYC: trainer.bf16_pays_off).
PRE_AMX_ONEDNN = PRE_BF16_ONEDNN | {"AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512"}


def caps_allow_amx(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the caps in force leave oneDNN the CPU's AMX tiles (where bf16 training is
    faster than float32; see :func:`components.training.trainer.bf16_pays_off`)."""
    env = os.environ if environ is None else environ
    return env.get(CAPS["onednn"][0], "").strip().upper() not in PRE_AMX_ONEDNN
