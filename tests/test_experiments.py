"""An experiment's outputs come back out of DVC's cache by the experiment's name.

A toy DVC project (real ``git`` and ``dvc`` commands) runs one stage in the workspace and
once more as ``dvc exp run --temp`` with another param: the experiment's folder and file
read back as the experiment wrote them, the workspace's own copy untouched; a wrong name,
a path the experiment lacks, a path outside the project and an emptied cache each fail with
a :class:`DataError` that says what to do, leaving no partial copy.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components.errors import DataError
from components.experiments import checkout_output, experiment_rev

STAGE = f"""stages:
  make:
    cmd: {sys.executable} write.py
    params: [value]
    outs: [out]
"""
WRITER = """import pathlib, yaml
value = yaml.safe_load(open("params.yaml"))["value"]
out = pathlib.Path("out")
(out / "sub").mkdir(parents=True, exist_ok=True)
(out / "value.txt").write_text(str(value))
(out / "sub" / "twice.txt").write_text(str(2 * value))
"""


def _run(cwd: Path, *args: str) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose workspace wrote value 1 and whose experiment ``seven`` wrote 7."""
    root = tmp_path_factory.mktemp("exp-project")
    _run(root, "git", "init", "-q")
    _run(root, "git", "config", "user.email", "ci@example.com")
    _run(root, "git", "config", "user.name", "ci")
    _run(root, sys.executable, "-m", "dvc", "init", "-q")
    (root / "dvc.yaml").write_text(STAGE)
    (root / "write.py").write_text(WRITER)
    (root / "params.yaml").write_text("value: 1\n")
    _run(root, sys.executable, "-m", "dvc", "repro", "-q")
    _run(root, "git", "add", "-A")
    _run(root, "git", "commit", "-q", "-m", "value 1")
    _run(root, sys.executable, "-m", "dvc", "exp", "run", "-q", "--temp", "--name", "seven",
         "-S", "value=7")
    return root


def test_a_temp_experiments_folder_and_file_read_back_as_it_wrote_them(
    project: Path, tmp_path: Path
) -> None:
    folder = checkout_output(project, "seven", "out", tmp_path / "a")
    assert folder == tmp_path / "a" / "out"
    assert (folder / "value.txt").read_text() == "7"
    assert (folder / "sub" / "twice.txt").read_text() == "14"
    single = checkout_output(project, "seven", "out/sub/twice.txt", tmp_path / "b")
    assert single == tmp_path / "b" / "twice.txt" and single.read_text() == "14"
    # The workspace keeps its own run's output and params.
    assert (project / "out" / "value.txt").read_text() == "1"
    assert (project / "params.yaml").read_text() == "value: 1\n"
    # A second checkout into the same folder replaces the first whole.
    (folder / "stray.txt").write_text("left over")
    again = checkout_output(project, "seven", "out", tmp_path / "a")
    assert sorted(p.name for p in again.iterdir()) == ["sub", "value.txt"]


def test_the_experiment_name_resolves_to_its_commit(project: Path) -> None:
    rev = experiment_rev(project, "seven")
    listed = _run(project, sys.executable, "-m", "dvc", "exp", "list", "--sha-only")
    assert len(rev) == 40 and rev[:7] in listed
    assert experiment_rev(project, "HEAD") == _run(project, "git", "rev-parse", "HEAD").strip()


@pytest.mark.parametrize(("name", "path", "message"), [
    ("eight", "out", "dvc exp list"),
    ("seven", "out/missing.txt", "has no out/missing.txt"),
    ("seven", "../out", "relative to the project root"),
    ("seven", "/out", "relative to the project root"),
])
def test_a_wrong_name_or_path_says_what_to_do(
    project: Path, tmp_path: Path, name: str, path: str, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        checkout_output(project, name, path, tmp_path)
    assert not list(tmp_path.iterdir())


def test_an_experiment_whose_files_left_the_cache_asks_for_a_pull(
    project: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "project"
    shutil.copytree(project, copy, symlinks=True)
    shutil.rmtree(copy / ".dvc" / "cache")
    with pytest.raises(DataError, match="dvc pull"):
        checkout_output(copy, "seven", "out", tmp_path / "into")
    assert not (tmp_path / "into" / "out").exists()  # no partial copy


def test_a_folder_outside_any_git_repository_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        experiment_rev(tmp_path, "seven")
