"""The commit a record names: changes to the outputs a run rewrites do not make it dirty."""

from __future__ import annotations

import subprocess
from pathlib import Path

from components.machine import git_commit


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_ignored_outputs_do_not_mark_the_code_dirty(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "ci@example.com")
    _git(tmp_path, "config", "user.name", "ci")
    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / "dvc.lock").write_text("a\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "start")
    clean = git_commit(tmp_path)
    assert clean is not None and len(clean) == 40
    (tmp_path / "claims" / "dvc.lock").write_text("b\n")
    assert git_commit(tmp_path) == clean + "-dirty"
    assert git_commit(tmp_path, ignore=("claims/dvc.lock",)) == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path, ignore=("claims/dvc.lock",)) == clean + "-dirty"
