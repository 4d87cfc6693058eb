"""``ferops registry reproduce`` rebuilds the tiny project's champion from its lineage (a git
worktree of its commit, data from the DVC cache, ``dvc repro`` to the model) and compares."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.test_dvc_honesty import tiny_dvc_project


def reproduce(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.registry", "reproduce",
                           "--task", "image", *args], cwd=root, capture_output=True,
                          text=True, timeout=1200)


@pytest.mark.slow
def test_the_champion_rebuilds_to_its_registered_metrics_and_a_tampered_one_does_not(
        tmp_path: Path) -> None:
    with tiny_dvc_project(tmp_path) as root:
        done = reproduce(root)
        assert done.returncode == 0, done.stdout + done.stderr[-3000:]
        assert "the rebuilt model scores what was registered" in done.stdout
        assert "| test_uar |" in done.stdout

        missing = reproduce(root, "--version", "99")
        assert missing.returncode == 2 and "lineage incomplete" in missing.stdout

        client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
        champion = client.get_model_version_by_alias("ferops-image", "champion")
        client.set_model_version_tag("ferops-image", champion.version, "test_uar", "0.0")
        tampered = reproduce(root)
        assert tampered.returncode == 3, tampered.stdout + tampered.stderr[-3000:]
        assert "| test_uar | 0.000000 |" in tampered.stdout and "NO |" in tampered.stdout
        # The rebuild left no worktree behind.
        listed = subprocess.run(["git", "worktree", "list"], cwd=root, capture_output=True,
                                text=True).stdout
        assert len(listed.strip().splitlines()) == 1
