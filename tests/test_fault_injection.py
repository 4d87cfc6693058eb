"""Every stage SIGKILLed in the middle, then ``dvc repro`` again: the pipeline finishes as if
nothing happened.

Two copies of the tiny project (see ``tests/test_dvc_honesty.py``): one runs ``dvc repro``
undisturbed, timing each stage's process; the other runs ``dvc repro`` once per stage and
SIGKILLs that stage's process group when it has run half as long as it did undisturbed, then
runs ``dvc repro`` to the end. Afterwards the deterministic stages' outputs have the same
hashes as the undisturbed run, ``data/`` is byte-identical to what it was, and the registry
holds one champion per task with a ``previous-champion`` that is another version.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.test_dvc_honesty import tiny_dvc_project

# dvc.yaml stage -> the module its command runs (what the watcher looks for).
STAGES: dict[str, str] = {
    "ingest": "pipelines.ingest", "validate": "pipelines.validate",
    "augment": "pipelines.augment", "preprocess": "pipelines.preprocess",
    "tune@baseline_cnn": "pipelines.tune", "train@baseline_cnn": "pipelines.train",
    "evaluate": "pipelines.evaluate", "promote": "pipelines.registry",
    "predict": "pipelines.predict",
}
# Stages whose outputs are a pure function of their inputs (no run ids, clocks or trial
# journals inside): their hashes must match the undisturbed run's. ``configure`` (under a
# second: too short to kill reliably mid-run) is only checked here.
DETERMINISTIC = ("ingest", "validate", "augment", "preprocess", "configure")
POLL_S = 0.02
TIMINGS = "artifacts/timings/"


def stage_processes(group: int) -> dict[str, float]:
    """``{module: start time}`` of the stage processes running in process group ``group``."""
    import psutil

    found: dict[str, float] = {}
    for proc in psutil.process_iter(["cmdline", "create_time"]):
        try:
            if os.getpgid(proc.pid) != group:
                continue
        except (ProcessLookupError, PermissionError):
            continue
        cmdline = proc.info["cmdline"] or []
        for module in STAGES.values():
            if module in cmdline:
                found[module] = proc.info["create_time"]
    return found


def repro(root: Path, kill: tuple[str, float] | None = None) -> dict[str, float]:
    """``dvc repro`` in ``root``; returns seconds each stage module ran. With ``kill``
    (module, seconds), SIGKILL the whole repro once that module has run that long."""
    process = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=root,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    seen: dict[str, list[float]] = {}
    try:
        while process.poll() is None:
            now = time.time()
            for module, started in stage_processes(process.pid).items():
                seen.setdefault(module, [started, now])[1] = now
                if kill and module == kill[0] and now - started >= kill[1]:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    return {m: end - start for m, (start, end) in seen.items()}
            time.sleep(POLL_S)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    output = process.communicate()[0]
    assert kill is None or kill[0] not in seen, f"{kill[0]} finished before the kill"
    assert process.returncode == 0, output[-3000:]
    return {m: end - start for m, (start, end) in seen.items()}


def lock_hashes(root: Path) -> dict[str, dict[str, str]]:
    """``{stage: {out path: md5}}`` from dvc.lock, without the timing reports (uncached
    ``artifacts/timings/`` files: wall-clock figures differ between any two runs)."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    return {stage: {o["path"]: o.get("md5", "") for o in entry.get("outs", [])
                    if not o["path"].startswith(TIMINGS)}
            for stage, entry in lock.items()}


def tree_digest(folder: Path) -> str:
    """One hash of every file's relative path and bytes under ``folder``."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def champions(root: Path) -> dict[str, tuple[str | None, str | None]]:
    """``{registered model: (champion, previous-champion)}`` of the project's store."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    return {model.name: (model.aliases.get("champion"), model.aliases.get("previous-champion"))
            for model in client.search_registered_models()
            if not model.name.endswith(".lock")}


@pytest.mark.slow
def test_each_stage_killed_mid_run_then_repro_finishes_as_undisturbed(
        tmp_path: Path) -> None:
    # "--dry": set the projects up without running a stage; the repro calls below run them.
    with tiny_dvc_project(tmp_path / "calm", lambda root: None, "--dry", "ingest") as calm:
        durations = repro(calm)
        reference = lock_hashes(calm)
    assert set(STAGES.values()) <= set(durations), durations

    with tiny_dvc_project(tmp_path / "faulty", lambda root: None, "--dry", "ingest") as faulty:
        data_before = tree_digest(faulty / "data")
        for module in STAGES.values():
            repro(faulty, kill=(module, durations[module] / 2))
        repro(faulty)
        status = subprocess.run([sys.executable, "-m", "dvc", "status", "dvc.yaml"],
                                cwd=faulty, capture_output=True, text=True)
        assert "up to date" in status.stdout + status.stderr, status.stdout
        assert tree_digest(faulty / "data") == data_before
        hashes = lock_hashes(faulty)
        for stage in DETERMINISTIC:
            assert hashes[stage] == reference[stage], stage
        aliases = champions(faulty)
        assert aliases, "no registered model"
        for name, (champion, previous) in aliases.items():
            assert champion is None or champion != previous, (name, champion, previous)
        assert any(champion for champion, _ in aliases.values())
