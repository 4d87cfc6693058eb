"""The CI promotion workflow: its triggers and commands, and its promote step run locally."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from registry.policy import load_policy
from registry.register import register_candidates
from tests.registry.conftest import Project

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "promote.yml"
BIN = Path(sys.executable).parent


def workflow() -> dict:
    data = yaml.safe_load(WORKFLOW.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def steps() -> list[dict]:
    return workflow()["jobs"]["promote"]["steps"]


def step(name: str) -> dict:
    return next(s for s in steps() if s.get("name", "").startswith(name))


def run(*command: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"})


@pytest.fixture(scope="module")
def ferops_registry_help() -> str:
    """`ferops registry promote --help`, once pipelines/cli.py delegates to the registry."""
    result = run(str(BIN / "ferops"), "registry", "promote", "--help")
    if result.returncode != 0:
        pytest.skip("`ferops registry` is not wired into pipelines/cli.py yet")
    return result.stdout


def test_workflow_triggers_secrets_and_steps() -> None:
    data = workflow()
    assert data["on"]["push"]["branches"] == ["main"] and "workflow_dispatch" in data["on"]
    env = data["jobs"]["promote"]["env"]
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert env[key] == f"${{{{ secrets.{key} }}}}"
    uses = {s.get("uses", "").split("@")[0]: s for s in steps()}
    assert uses["actions/setup-python"]["with"]["python-version"] == "3.11"
    assert "actions/checkout" in uses
    assert "make install" in step("Install")["run"]
    pull = step("Pull data")["run"]
    assert 'if [ -n "$(dvc remote list)" ]' in pull and "dvc pull" in pull
    assert "dvc repro" in step("Reproduce")["run"]
    promote = step("Promote")["run"]
    assert "ferops registry promote" in promote and "$GITHUB_STEP_SUMMARY" in promote


def test_workflow_commands_exist_in_the_project() -> None:
    assert "\ninstall:" in (REPO / "Makefile").read_text()
    assert shutil.which("dvc", path=str(BIN)) is not None
    assert run(str(BIN / "dvc"), "remote", "list").returncode == 0
    assert run(sys.executable, "-m", "pipelines.cli", "data", "synth", "--help").returncode == 0
    assert run(sys.executable, "-m", "pipelines.registry", "promote", "--help").returncode == 0


def test_ferops_registry_promote_help(ferops_registry_help: str) -> None:
    assert "--dry-run" in ferops_registry_help and "--refused-ok" in ferops_registry_help


def run_promote_step(project: Project, summary: Path) -> subprocess.CompletedProcess:
    """The workflow's promote step, as GitHub runs it (bash -e), in the project folder."""
    env = {**os.environ, **project.env(), "GITHUB_STEP_SUMMARY": str(summary),
           "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "PROMOTE_TASK": "image", "PROMOTE_DRY_RUN": "false"}
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                           step("Promote")["run"]], cwd=project.root, env=env,
                          capture_output=True, text=True, timeout=120)


def test_promote_step_posts_the_report_to_the_job_summary(
    project: Project, ferops_registry_help: str
) -> None:
    policy = load_policy({"registry": project.policy})
    project.candidate("fusion_early", 0.60)
    register_candidates(project.train, project.data, project.client(), policy)
    summary = project.root / "summary.md"

    done = run_promote_step(project, summary)
    assert done.returncode == 0, done.stderr
    assert f"## {project.name()}: promoted" in summary.read_text()

    project.candidate("baseline_cnn", 0.40)
    register_candidates(project.train, project.data, project.client(), policy)
    refused = run_promote_step(project, summary)
    assert refused.returncode == 0, refused.stderr  # a refusal is reported, not a failure
    assert "::warning title=Promotion refused::" in refused.stdout
    assert "refused by the gate" in summary.read_text()
    assert project.client().get_model_version_by_alias(project.name(), "champion").version \
        == "1"
