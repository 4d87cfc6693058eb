"""``dvc exp run`` experiments, in the workspace or a temporary copy, land in one MLflow store.

DVC 3 runs ``--temp`` experiments in a full repository copy under
``<project>/.dvc/tmp/exps/standalone/<tmpdir>`` (``--queue``: ``.../exps/celery/<tmpdir>``)
and deletes it afterwards. :func:`project_root` must name the original project there, or
the run's sqlite store would vanish with the copy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from components.tracking.store import (
    checkout_root,
    default_tracking_uri,
    exp_copy_origin,
    lineage_root,
    project_root,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = "dvc-exp-check"
# Environment that would redirect the store away from the defaults under test.
REDIRECTS = ("FEROPS_PROJECT_ROOT", "DVC_ROOT", "MLFLOW_TRACKING_URI")

# The stage: one MLflow run with train.lr from params.yaml, through the project's helpers.
STAGE_SCRIPT = textwrap.dedent(f"""
    import os
    import mlflow
    import yaml
    from components.tracking.store import (
        checkout_root, ensure_experiment, exp_copy_origin, tracking_uri)

    lr = yaml.safe_load(open("params.yaml"))["train"]["lr"]
    ensure_experiment({EXPERIMENT!r})
    with mlflow.start_run():
        mlflow.log_param("train.lr", lr)
        mlflow.set_tags({{"store": tracking_uri(), "cwd": os.getcwd(),
                         "checkout": str(checkout_root()),
                         "by_path": str(exp_copy_origin(checkout_root())),
                         "exp": os.environ.get("DVC_EXP_NAME", "")}})
    open("done.txt", "w").write(str(lr))
""")


# ---- project_root() unit checks ---------------------------------------------------------

@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in REDIRECTS:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def _fake_project(root: Path) -> Path:
    """A folder that looks like a ferops checkout (dvc.yaml and .git)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dvc.yaml").write_text("stages: {}\n")
    (root / ".git").mkdir()
    return root


def test_project_root_is_the_checkout_above_the_working_directory(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    project = _fake_project(tmp_path / "proj")
    (project / "src" / "deep").mkdir(parents=True)
    clean_env.chdir(project / "src" / "deep")
    assert project_root() == project.resolve()
    assert default_tracking_uri() == f"sqlite:///{(project / 'mlflow.db').resolve()}"


@pytest.mark.parametrize("queue", ["standalone", "celery"])
def test_temp_experiment_copy_resolves_to_the_original_project(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, queue: str
) -> None:
    project = _fake_project(tmp_path / "proj")
    copy = _fake_project(project / ".dvc" / "tmp" / "exps" / queue / "tmpab12cd")
    (copy / "sub").mkdir()
    clean_env.chdir(copy / "sub")
    assert checkout_root() == copy.resolve()  # the copy is a checkout of its own
    assert project_root() == project.resolve()  # but the store is the project's
    # ...while data.dvc and the commit are read from the copy the experiment runs on.
    clean_env.setenv("DVC_ROOT", str(project))
    assert lineage_root() == copy.resolve()


def test_lineage_root_is_the_project_outside_experiment_copies(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    project = _fake_project(tmp_path / "proj")
    chosen = _fake_project(tmp_path / "chosen")
    clean_env.chdir(project)
    assert lineage_root() == project.resolve()
    clean_env.setenv("FEROPS_PROJECT_ROOT", str(chosen))
    assert lineage_root() == chosen.resolve()


def test_dvc_root_points_past_the_copy(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    """DVC sets DVC_ROOT to the original repository for every stage, temp copies included."""
    project = _fake_project(tmp_path / "proj")
    elsewhere = _fake_project(tmp_path / "other")
    clean_env.chdir(elsewhere)
    clean_env.setenv("DVC_ROOT", str(project))
    assert project_root() == project.resolve()
    clean_env.setenv("DVC_ROOT", str(tmp_path / "missing"))  # stale value: ignored
    assert project_root() == elsewhere.resolve()


def test_ferops_project_root_wins_over_dvc_and_the_path(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    project = _fake_project(tmp_path / "proj")
    copy = _fake_project(project / ".dvc" / "tmp" / "exps" / "standalone" / "tmp1")
    chosen = tmp_path / "chosen"
    clean_env.chdir(copy)
    clean_env.setenv("DVC_ROOT", str(project))
    clean_env.setenv("FEROPS_PROJECT_ROOT", str(chosen))
    assert project_root() == chosen.resolve()


def test_paths_outside_experiment_copies_are_kept(tmp_path: Path) -> None:
    assert exp_copy_origin(tmp_path / "a" / ".dvc" / "tmp") == tmp_path / "a" / ".dvc" / "tmp"
    assert exp_copy_origin(tmp_path / "exps" / "tmp") == tmp_path / "exps" / "tmp"
    nested = tmp_path / "a" / ".dvc" / "tmp" / "exps" / "x" / ".dvc" / "tmp" / "exps" / "y"
    assert exp_copy_origin(nested) == tmp_path / "a"


# ---- real dvc exp run ---------------------------------------------------------------------

def _env() -> dict[str, str]:
    """Quiet DVC and git, ferops importable, no store redirection inherited from the caller."""
    env = {k: v for k, v in os.environ.items() if k not in REDIRECTS}
    env.update(DVC_NO_ANALYTICS="1", PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1",
               GIT_AUTHOR_NAME="ferops-test", GIT_AUTHOR_EMAIL="test@example.invalid",
               GIT_COMMITTER_NAME="ferops-test", GIT_COMMITTER_EMAIL="test@example.invalid")
    return env


def _run(command: list[str], cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done.stdout


def _make_project(root: Path) -> Path:
    """A committed git + DVC project with one stage that logs an MLflow run."""
    root.mkdir()
    dvc = str(Path(sys.executable).parent / "dvc")
    _run(["git", "init", "-q"], root)
    _run([dvc, "init", "-q"], root)
    (root / "log_run.py").write_text(STAGE_SCRIPT)
    (root / "params.yaml").write_text(yaml.safe_dump({"train": {"lr": 0.01}}))
    stage = {"cmd": f"{sys.executable} log_run.py", "deps": ["log_run.py"],
             "params": ["train.lr"], "outs": [{"done.txt": {"cache": False}}]}
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"log": stage}}))
    (root / ".gitignore").write_text("mlflow.db\nmlartifacts/\n")
    _run(["git", "add", "-A"], root)
    _run(["git", "commit", "-q", "-m", "init"], root)
    return root


def test_dvc_exp_runs_in_workspace_and_temp_copy_land_in_the_project_store(
    tmp_path: Path,
) -> None:
    project = _make_project(tmp_path / "proj").resolve()
    dvc = str(Path(sys.executable).parent / "dvc")
    _run([dvc, "exp", "run", "-S", "train.lr=0.123"], project)
    _run([dvc, "exp", "run", "--temp", "-S", "train.lr=0.456"], project)

    store = default_tracking_uri(project)
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None, f"no run reached {store}"
    runs = {r.data.params["train.lr"]: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == ["0.123", "0.456"]
    workspace, temp = runs["0.123"], runs["0.456"]
    for run in (workspace, temp):
        assert run.info.status == "FINISHED" and run.data.tags["exp"]  # ran as a DVC exp
        assert run.data.tags["store"] == store
        assert run.data.tags["by_path"] == str(project)  # the path fallback agrees
    assert workspace.data.tags["cwd"] == str(project)
    # The temp run really ran in DVC's copy, a checkout of its own, not in the project.
    copy = Path(temp.data.tags["checkout"])
    assert copy.is_relative_to(project / ".dvc" / "tmp" / "exps") and copy != project
    assert Path(temp.data.tags["cwd"]) == copy
    assert experiment.artifact_location == (project / "mlartifacts").as_uri()
    leftovers = list((project / ".dvc" / "tmp").rglob("mlflow.db"))
    assert not leftovers, f"runs written inside DVC's temp area: {leftovers}"
