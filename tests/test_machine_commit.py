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
    assert git_commit(tmp_path, mark_dirty=False) == clean  # the bare hash, for MLflow's link


def test_the_report_names_the_code_commit_not_the_record_commit(tmp_path: Path) -> None:
    """Arms run one after another commit their records; the report names, for each, the last
    commit that changed code, so arms run by the same code read the same."""
    from components.claims.report import code_commit

    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "ci@example.com")
    _git(tmp_path, "config", "user.name", "ci")
    (tmp_path / "code.py").write_text("x = 1\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "code")
    code = git_commit(tmp_path)
    (tmp_path / "claims" / "measured" / "arm").mkdir(parents=True)
    (tmp_path / "claims" / "measured" / "arm" / "s0.json").write_text("{}\n")
    (tmp_path / "claims" / "dvc.lock").write_text("a\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "arm measured")
    record = git_commit(tmp_path)
    assert record != code
    assert code_commit(tmp_path, record) == code
    assert code_commit(tmp_path, record + "-dirty") == code + "-dirty"
    assert code_commit(tmp_path, None) is None
    assert code_commit(tmp_path, "f" * 40) == "f" * 40  # not in this clone: as recorded


def test_outside_a_repository_there_is_no_commit(tmp_path: Path) -> None:
    assert git_commit(tmp_path / "missing") is None
