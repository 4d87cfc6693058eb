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
import torch

from components.training.data import load_split
from components.training.distributed import DistContext
from components.training.trainer import Trainer, seed_everything
from tests.synthetic_task import make_synthetic_task
from tests.training.ddp_script import one_step
from tests.training.helpers import TinyCNN, quick_config

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(tmp_path: Path, task_dir: Path, out: Path, mode: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
        f"--master_port={_free_port()}", str(REPO / "tests/training/ddp_script.py"),
        str(task_dir), str(out), mode,
    ]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_ranks_see_every_training_sample_once_per_epoch(tmp_path: Path) -> None:
    """Each rank's share of an epoch, as the trainer deals it, partitions the training set."""
    task_dir = make_synthetic_task(tmp_path / "data", "rgbd", size=16)
    train = load_split(task_dir, "train", ("color",))
    cfg = quick_config(batch_size=16)
    for epoch in range(3):
        shares = [torch.cat(Trainer(TinyCNN(4, 3), cfg, ctx=DistContext(rank, 2))
                            ._epoch_batches(train, epoch)) for rank in (0, 1)]
        seen = torch.cat(shares).sort().values
        assert torch.equal(seen, torch.arange(len(train)))
        assert len(shares[0]) == len(shares[1]) == len(train) // 2


@pytest.mark.e2e
def test_one_ddp_step_equals_one_process_stepping_on_the_global_batch(tmp_path: Path) -> None:
    task_dir = make_synthetic_task(tmp_path / "data", "rgbd", size=16)
    _torchrun(tmp_path, task_dir, tmp_path / "ddp", "one_step")
    ddp = torch.load(tmp_path / "ddp" / "one_step.pt")
    single = one_step(task_dir)
    for key, value in single.items():
        torch.testing.assert_close(ddp[key], value, rtol=1e-5, atol=1e-6)
    seed_everything(0)
    before = TinyCNN(4, 3).state_dict()  # the step moved the weights: the check has teeth
    assert any(not torch.equal(before[k], single[k]) for k in single)


@pytest.mark.e2e
def test_two_process_ddp_trains_and_writes_one_run_folder(tmp_path: Path) -> None:
    task_dir = make_synthetic_task(tmp_path / "data", "rgbd", size=16)
    _torchrun(tmp_path, task_dir, tmp_path / "ddp" / "run", "full")
    ddp = json.loads((tmp_path / "ddp" / "run" / "metrics.json").read_text())
    assert ddp["world_size"] == 2 and ddp["epochs_run"] == 4
    # Rank 0 scores the test splits and writes the run folder; rank 1 only trained.
    ranks = [json.loads((tmp_path / "ddp" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["test_accuracy"] == ddp["test_accuracy"] and ranks[1] == {}
    written = sorted(p.name for p in (tmp_path / "ddp" / "run").iterdir())
    assert {"checkpoint.pt", "model.pt", "metrics.json", "history.csv"} <= set(written)
    assert not [name for name in written if name.endswith(".tmp")]


@pytest.mark.e2e
def test_ranks_agree_on_a_budget_plan_and_its_refit(tmp_path: Path) -> None:
    """Every rank probes and then times its first epoch; all must plan, refit and run the
    same epoch count (a rank planning one more epoch would wait for the others forever)."""
    task_dir = make_synthetic_task(tmp_path / "data", "rgbd", size=16)
    _torchrun(tmp_path, task_dir, tmp_path / "ddp", "budget")
    ranks = [json.loads((tmp_path / "ddp" / f"budget{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]
    assert 1 <= ranks[0]["run"] <= ranks[0]["planned"] <= 1000


def test_collective_timeout_comes_from_the_environment_and_is_checked(monkeypatch) -> None:
    from datetime import timedelta

    from components.errors import ConfigError
    from components.training.distributed import TIMEOUT_ENV, collective_timeout

    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    assert collective_timeout() == timedelta(seconds=600)
    monkeypatch.setenv(TIMEOUT_ENV, "15")
    assert collective_timeout() == timedelta(seconds=15)
    for bad in ("soon", "0", "-3"):
        monkeypatch.setenv(TIMEOUT_ENV, bad)
        with pytest.raises(ConfigError, match=TIMEOUT_ENV):
            collective_timeout()


def test_the_process_group_backend_follows_the_training_device(monkeypatch) -> None:
    """A CPU run on a machine with a GPU joins gloo (NCCL cannot reduce CPU tensors)."""
    from components.training.distributed import backend_for

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert backend_for("cpu") == "gloo"
    assert backend_for("cuda") == "nccl"
    assert backend_for("auto") == "nccl"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert backend_for("auto") == "gloo"
