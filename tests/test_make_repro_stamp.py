"""``make repro``'s shortcut: with nothing changed since the last complete ``dvc repro`` it
skips DVC; any change to what the pipeline reads or writes sends it back to ``dvc repro``.

The Makefile runs in a scratch folder whose ``.venv/bin`` holds recording stand-ins for
``dvc`` and ``ferops``: what is under test is the Makefile's decision, not DVC.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
RECORDER = """#!/bin/sh
echo "$(basename "$0") $*" >> "{log}"
{extra}
"""


def _tool(path: Path, log: Path, extra: str = "") -> None:
    path.write_text(RECORDER.format(log=log, extra=extra))
    path.chmod(0o755)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = tmp_path / "proj"
    for folder in ("data", "conf", "components/__pycache__", "pipelines", "registry",
                   "artifacts/predict", "artifacts/train", ".dvc", ".venv/bin"):
        (root / folder).mkdir(parents=True)
    shutil.copy2(REPO_ROOT / "Makefile", root / "Makefile")
    for name in ("pyproject.toml", "params.yaml", "dvc.yaml", "dvc.lock", ".dvc/config",
                 ".dvcignore", "data/face.png", "artifacts/train/model.pt"):
        (root / name).write_text("x\n")
    (root / "artifacts/predict/examples.md").write_text("7 of 8 right\n")
    log = root / "calls.log"
    for name in ("python", "ferops", "dvc"):
        _tool(root / ".venv/bin" / name, log)
    time.sleep(0.02)
    (root / "data.dvc").write_text("md5\n")          # newer than data/: no `dvc add`
    (root / ".venv/.installed-stamp").touch()      # newer than pyproject.toml: no install
    return root


def _make_repro(root: Path, *args: str) -> tuple[str, list[str]]:
    log = root / "calls.log"
    log.unlink(missing_ok=True)
    time.sleep(0.02)  # ctimes of what the test changed differ from the stamp's
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    done = subprocess.run(["make", "-s", "repro", *args], cwd=root, capture_output=True,
                          text=True, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    calls = log.read_text().splitlines() if log.exists() else []
    return done.stdout, [c for c in calls if c.startswith("dvc repro")]


def test_a_second_repro_with_nothing_changed_skips_dvc(project: Path) -> None:
    out, runs = _make_repro(project)
    assert runs == ["dvc repro"] and "7 of 8 right" in out
    out, runs = _make_repro(project)
    assert runs == [] and "Pipeline up to date" in out and "7 of 8 right" in out
    _, runs = _make_repro(project, "FULL_CHECK=1")
    assert runs == ["dvc repro"]


@pytest.mark.parametrize("change", ["params", "copy_keeping_mtime", "deleted_output",
                                    "new_data_file", "code"])
def test_any_change_sends_make_back_to_dvc(project: Path, change: str) -> None:
    _make_repro(project)
    if change == "params":
        (project / "params.yaml").write_text("train: {lr: 0.1}\n")
    elif change == "copy_keeping_mtime":  # an old file copied over a raw image, mtime kept
        old = project.parent / "old.png"
        old.write_text("other bytes\n")
        os.utime(old, (0, 0))
        shutil.copy2(old, project / "data/face.png")
    elif change == "deleted_output":
        (project / "artifacts/train/model.pt").unlink()
    elif change == "new_data_file":
        (project / "data/new.png").write_text("y\n")
    else:
        (project / "components/stage.py").write_text("print()\n")
    _, runs = _make_repro(project)
    assert runs == ["dvc repro"], change


def test_bytecode_caches_do_not_count(project: Path) -> None:
    _make_repro(project)
    (project / "components/__pycache__/stage.cpython-311.pyc").write_bytes(b"\0")
    _, runs = _make_repro(project)
    assert runs == []


def test_an_input_changed_during_the_repro_leaves_no_stamp(project: Path) -> None:
    """DVC read params.yaml when it started; a later edit must not be taken as done."""
    _tool(project / ".venv/bin/dvc", project / "calls.log",
          extra='[ "$1" = repro ] && echo "train: {lr: 0.2}" > params.yaml')
    _make_repro(project)
    _tool(project / ".venv/bin/dvc", project / "calls.log")
    _, runs = _make_repro(project)
    assert runs == ["dvc repro"]
