"""``torchrun --nnodes=2 --nproc_per_node=1`` with a c10d rendezvous on 127.0.0.1: two
"machines" on one host train one model through the train stage, and a run whose second node
is killed resumes from the checkpoint with ``--resume`` to the same result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from components.training.distributed import TIMEOUT_ENV
from tests.tracking.conftest import PARAMS, free_port, make_workspace

REPO = Path(__file__).resolve().parents[2]
EPOCHS = 40  # so a kill after the first checkpoint lands mid-run, even on a busy machine


def node_command(ws, out: Path, port: int, *extra: str) -> list[str]:
    """One node's ``torchrun`` for the train stage, rendezvous at 127.0.0.1:``port``."""
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
            "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=ferops",
            "--rdzv-conf=read_timeout=10",
            "--max-restarts=0", "-m", "pipelines.train", "--arch", "baseline_cnn",
            "--params", str(ws.params), "--data", str(ws.data), "--out", str(out),
            "--tune-dir", str(ws.root / "tune"), *extra]


def start_nodes(ws, out: Path, *extra: str) -> list[subprocess.Popen]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
           "FEROPS_PROJECT_ROOT": str(ws.root), TIMEOUT_ENV: "15"}
    port = free_port()
    return [subprocess.Popen(node_command(ws, out, port, *extra), cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True) for _ in range(2)]


def kill_tree(pid: int) -> None:
    """SIGKILL a process and every descendant (torchrun's workers leave its process group)."""
    import psutil

    root = psutil.Process(pid)
    for proc in [*root.children(recursive=True), root]:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            continue


def finish(nodes: list[subprocess.Popen]) -> None:
    for node in nodes:
        output = node.communicate(timeout=300)[0]
        assert node.returncode == 0, output[-3000:]


@pytest.fixture
def workspace(tmp_path: Path):
    ws = make_workspace(tmp_path / "project")
    params = {**PARAMS, "train": {**PARAMS["train"], "track": False, "epochs": EPOCHS,
                                  "patience": 0}}
    ws.params.write_text(yaml.safe_dump(params))
    return ws


@pytest.mark.e2e
def test_two_nodes_train_and_a_killed_node_resumes_to_the_same_result(workspace) -> None:
    ws = workspace
    whole = ws.root / "artifacts" / "train" / "whole"
    finish(start_nodes(ws, whole))
    metrics = json.loads((whole / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["epochs_run"] == EPOCHS

    broken = ws.root / "artifacts" / "train" / "broken"
    nodes = start_nodes(ws, broken)
    deadline = time.monotonic() + 240
    while not (broken / "checkpoint.pt").exists():  # an epoch finished and was saved
        assert time.monotonic() < deadline and nodes[0].poll() is None
        time.sleep(0.05)
    kill_tree(nodes[1].pid)  # the node: its agent and the training worker it started
    nodes[1].wait()
    try:  # the survivor's training fails after FEROPS_DIST_TIMEOUT_S; its agent may then
        nodes[0].communicate(timeout=120)  # wait on the dead node's rendezvous store
        assert nodes[0].returncode != 0
    except subprocess.TimeoutExpired:  # as an operator would: bring the whole job down
        kill_tree(nodes[0].pid)
        nodes[0].communicate()
    assert not (broken / "metrics.json").exists()  # nothing was written as finished

    finish(start_nodes(ws, broken, "--resume"))
    resumed = json.loads((broken / "metrics.json").read_text())
    assert resumed["epochs_run"] == EPOCHS and resumed["world_size"] == 2
    for key in ("test_accuracy", "test_uar", "best_epoch"):
        assert resumed[key] == metrics[key], key
