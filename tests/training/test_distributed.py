"""A real 2-process DistributedDataParallel run (gloo, CPU) against one process.

Command under test (documented in pipelines/train.py):
    python -m torch.distributed.run --nproc_per_node=2 --master_port=<port> <script> ...
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from components.training.data import make_synthetic_task
from tests.training.ddp_script import main as train_one_process

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.e2e
def test_two_process_ddp_matches_one_process(tmp_path: Path) -> None:
    task_dir = make_synthetic_task(tmp_path / "data", "rgbd", size=16)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
        f"--master_port={_free_port()}", str(REPO / "tests/training/ddp_script.py"),
        str(task_dir), str(tmp_path / "ddp" / "run"),
    ]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]

    train_one_process(task_dir, tmp_path / "single" / "run")
    single = json.loads((tmp_path / "single" / "run" / "metrics.json").read_text())
    ddp = json.loads((tmp_path / "ddp" / "run" / "metrics.json").read_text())
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    assert ddp["epochs_run"] == single["epochs_run"] == 4
    for key in ("test_accuracy", "test_uar", "test_occ25_accuracy"):
        assert abs(ddp[key] - single[key]) <= 0.15, (key, ddp[key], single[key])
    # Metrics were gathered: both ranks saw the same full-split scores; only rank 0 wrote.
    ranks = [json.loads((tmp_path / "ddp" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]
    written = sorted(p.name for p in (tmp_path / "ddp" / "run").iterdir())
    assert {"checkpoint.pt", "model.pt", "metrics.json", "history.csv"} <= set(written)
    assert not [name for name in written if name.endswith(".tmp")]
