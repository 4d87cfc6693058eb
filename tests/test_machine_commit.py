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


def test_the_report_names_the_commit_of_the_code_an_arm_reads(tmp_path: Path) -> None:
    """Arms run one after another commit their records, and other work lands between them;
    the report names, for each, the last commit that changed what the arm reads, so arms run
    by the same code read the same."""
    from components.claims.report import code_commit

    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "ci@example.com")
    _git(tmp_path, "config", "user.name", "ci")
    (tmp_path / "code.py").write_text("x = 1\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "code")
    code = git_commit(tmp_path)
    (tmp_path / "README.md").write_text("unrelated\n")
    (tmp_path / "claims" / "measured" / "arm").mkdir(parents=True)
    (tmp_path / "claims" / "measured" / "arm" / "s0.json").write_text("{}\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "arm measured, README edited")
    record = git_commit(tmp_path)
    assert record != code
    assert code_commit(tmp_path, record, ["code.py"]) == code
    assert code_commit(tmp_path, record + "-dirty", ["code.py"]) == code + "-dirty"
    assert code_commit(tmp_path, record, ["code.py", "README.md"]) == record
    assert code_commit(tmp_path, None, ["code.py"]) is None
    assert code_commit(tmp_path, record, []) == record  # no stage list: as recorded
    assert code_commit(tmp_path, "f" * 40, ["code.py"]) == "f" * 40  # not in this clone


def test_an_arms_inputs_include_its_data_stages_code_and_not_their_outputs() -> None:
    from components.claims.dag import stage_inputs

    stages = {
        "data-a": {"deps": ["pipelines/ingest.py", "raw"], "outs": ["art/a/ingest"]},
        "data-b": {"deps": ["pipelines/preprocess.py", "art/a/ingest"],
                   "outs": ["art/b/preprocess", {"art/b/timings": {"cache": False}}]},
        "arm-x-s0": {"deps": ["art/b/preprocess/train.npz", "pipelines/train.py",
                              "pipelines/ingest.py"], "outs": [{"rec.json": {"cache": False}}]},
    }
    assert stage_inputs(stages, "arm-x-s0") == [
        "pipelines/preprocess.py", "pipelines/ingest.py", "raw", "pipelines/train.py"]
    assert stage_inputs(stages, "arm-missing-s0") == []


def test_outside_a_repository_there_is_no_commit(tmp_path: Path) -> None:
    assert git_commit(tmp_path / "missing") is None
