"""The instruction-set caps: set before the libraries load, a user's value kept, lifted on
request, and in force in a pipelines process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from components.errors import ConfigError
from components.isa import (
    CAPS,
    NATIVE,
    caps_allow_amx,
    caps_allow_bf16,
    cpu_flags,
    pin_instruction_set,
)


def uncapped_env() -> dict[str, str]:
    """This process's environment without the caps (as a process outside ``pipelines`` has)."""
    capped = {variable for variable, _ in CAPS.values()} | {NATIVE}
    return {k: v for k, v in os.environ.items() if k not in capped}


def test_each_cap_is_set_unless_the_user_set_it() -> None:
    env = {"ATEN_CPU_CAPABILITY": "default"}
    caps = pin_instruction_set(env, flags=frozenset({"avx2", "avx512f"}))
    assert env["ATEN_CPU_CAPABILITY"] == "default"  # the user's choice wins
    for variable, value in CAPS.values():
        assert caps[variable] == env[variable]
        if variable != "ATEN_CPU_CAPABILITY":
            assert env[variable] == value


def test_opencv_is_capped_only_where_the_cpu_has_avx512() -> None:
    """OpenCV warns at every import about disabling a feature the CPU lacks; without AVX-512
    it cannot use that group anyway, so the cap is left unset there."""
    variable = CAPS["opencv"][0]
    avx2_only = pin_instruction_set({}, flags=frozenset({"avx", "avx2"}))
    assert variable not in avx2_only and CAPS["onednn"][0] in avx2_only
    assert variable in pin_instruction_set({}, flags=frozenset({"avx2", "avx512f"}))


def test_the_flags_are_the_first_cpus(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fma avx2\nvmx flags\t: ept\n\n"
                       "processor\t: 1\nflags\t\t: avx512f\n")
    assert cpu_flags(cpuinfo) == frozenset({"fma", "avx2"})
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_a_capped_process_imports_opencv_without_a_word_on_stderr() -> None:
    """A CLI's one-line error stays one line on any CPU: importing ``pipelines`` then cv2
    prints nothing to stderr."""
    done = subprocess.run([sys.executable, "-c", "import pipelines, cv2"], capture_output=True,
                          text=True, env=uncapped_env(), check=True)
    assert done.stderr == ""


def test_native_lifts_every_cap() -> None:
    env = {NATIVE: "1"}
    assert pin_instruction_set(env) == {} and env == {NATIVE: "1"}


def test_a_pipelines_process_runs_numpy_and_torch_below_avx512() -> None:
    """What every stage of dvc.yaml gets: importing ``pipelines`` first caps the libraries
    it imports next (on a machine without AVX-512 this holds trivially)."""
    code = (
        "import json, pipelines, numpy, torch\n"
        "from numpy._core._multiarray_umath import __cpu_features__ as features\n"
        "print(json.dumps({'numpy_v4': bool(features.get('X86_V4')),\n"
        "                  'torch': torch.backends.cpu.get_cpu_capability()}))\n"
    )
    env = uncapped_env()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=True)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert not seen["numpy_v4"], seen
    assert "AVX512" not in seen["torch"].upper(), seen


def test_the_avx2_cap_takes_bf16_away() -> None:
    """Under the pipeline's cap bf16 autocast runs emulated (far slower than float32), so
    ``precision: auto`` must not choose it there; lifting the cap gives it back."""
    capped: dict[str, str] = {}
    pin_instruction_set(capped)
    assert not caps_allow_bf16(capped)
    assert caps_allow_bf16({})
    assert caps_allow_bf16({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX", "ATEN_CPU_CAPABILITY": "amx"})
    assert not caps_allow_bf16({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"})
    # ATen's cap alone leaves oneDNN's bf16 kernels (measured: bf16 still beat float32)
    assert caps_allow_bf16({"ATEN_CPU_CAPABILITY": "avx2"})


def test_a_cap_below_amx_leaves_bf16_native_but_not_on_amx() -> None:
    assert caps_allow_amx({}) and caps_allow_amx({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"})
    below_amx = {"ONEDNN_MAX_CPU_ISA": "avx512_core_bf16"}  # oneDNN reads it in any case
    assert caps_allow_bf16(below_amx) and not caps_allow_amx(below_amx)
    assert not caps_allow_amx(pin_instruction_set({}))


def test_auto_precision_is_float32_in_a_capped_pipelines_process() -> None:
    code = ("import pipelines\nfrom components.training.trainer import resolve_precision\n"
            "print(resolve_precision('auto'))\n")
    env = uncapped_env()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=True)
    assert done.stdout.strip().splitlines()[-1] == "fp32"


def test_relaunch_replaces_the_process_without_the_caps(tmp_path) -> None:
    """``isa: native`` restarts the same process (same PID: DVC and torchrun wait on it)
    with the caps lifted; the restarted process does not restart again."""
    module = tmp_path / "isa_probe.py"
    module.write_text(
        "import json, os, sys\n"
        "import pipelines\n"
        "from pipelines._common import relaunch_at_isa, run_cli\n"
        "def body(argv):\n"
        "    print(json.dumps({'pid': os.getpid(), 'argv': sys.argv[1:],\n"
        "                      'onednn': os.environ.get('ONEDNN_MAX_CPU_ISA'),\n"
        "                      'native': os.environ.get('FEROPS_NATIVE_ISA')}), flush=True)\n"
        "    relaunch_at_isa('native', 'isa_probe', argv)\n"
        "    return 0\n"
        "sys.exit(run_cli(body))\n"
    )
    env = uncapped_env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), os.getcwd()])
    done = subprocess.run([sys.executable, "-m", "isa_probe", "--flag", "x"],
                          capture_output=True, text=True, env=env, timeout=120, check=True)
    before, after = (json.loads(line) for line in done.stdout.strip().splitlines())
    assert before["onednn"] == "AVX2" and before["native"] is None
    assert after == {"pid": before["pid"], "argv": ["--flag", "x"], "onednn": None,
                     "native": "1"}


@pytest.mark.parametrize("stage", ["tune", "train"])
def test_ferops_stage_shortcuts_restart_once_without_the_cap(stage: str, tmp_path) -> None:
    """`ferops tune|train` with `isa: native` replace themselves by the uncapped stage once
    (a second restart would mean the caps survived the exec) and then run it: on this empty
    input the tuner stops at its params check, the trainer skips the missing task."""
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  isa: native\ntune: {}\n")
    ferops = os.path.join(os.path.dirname(sys.executable), "ferops")
    done = subprocess.run([ferops, stage, "--arch", "baseline_cnn", "--params", str(params),
                           "--data", str(tmp_path / "none"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=uncapped_env(), timeout=120)
    assert done.stderr.count("restarting without the AVX2 cap") == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    if stage == "tune":
        assert done.returncode == 2 and last.startswith("error: tune.spaces"), done.stderr
    else:
        assert done.returncode == 0 and "baseline_cnn skipped: no task" in last, done.stderr


def test_native_isa_in_a_capped_call_from_python_is_refused() -> None:
    """Training on under the cap the params asked to lift would give slower results with
    no sign why: a call that cannot restart says how to run it instead."""
    from pipelines._common import relaunch_at_isa, require_isa

    saved = os.environ.pop(NATIVE, None)
    try:
        with pytest.raises(ConfigError, match="python -m pipelines.tune"):
            relaunch_at_isa("native", "pipelines.tune", ["--arch", "x"])
        require_isa("avx2", "pipelines.tune")  # the default never needs a restart
        os.environ[NATIVE] = "1"
        require_isa("native", "pipelines.tune")  # already uncapped: nothing to do
    finally:
        os.environ.pop(NATIVE, None)
        if saved is not None:
            os.environ[NATIVE] = saved


def test_an_unknown_isa_is_a_config_error() -> None:
    from components.training.config import TrainConfig

    with pytest.raises(ConfigError, match="train.isa"):
        TrainConfig(isa="avx512")
