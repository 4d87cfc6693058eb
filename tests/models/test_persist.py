"""Estimator pickles: the same model gives the same bytes in any process, and loads back."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import joblib
import torch

from components.models import persist

REPO = Path(__file__).resolve().parents[2]
DUMP = (
    "import sys, torch\n"
    "from components.models import persist\n"
    "torch.manual_seed(0)\n"
    "net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))\n"
    "persist.dump({'net': net.to(memory_format=torch.channels_last), 'groups': [['a']]},\n"
    "             sys.stdout.buffer)\n"
)


def _dump_in_a_new_process() -> bytes:
    return subprocess.run([sys.executable, "-c", DUMP], cwd=REPO, capture_output=True,
                          check=True).stdout


def test_two_processes_write_the_same_bytes() -> None:
    # torch's own pickling names each storage by its address: different bytes per process
    assert _dump_in_a_new_process() == _dump_in_a_new_process()


def test_tensors_parameters_and_dtypes_load_back(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    frozen = torch.nn.Parameter(torch.ones(2), requires_grad=False)
    payload = {"net": net, "frozen": frozen, "half": torch.arange(4).to(torch.bfloat16),
               "count": torch.tensor(7)}
    path = persist.save(payload, tmp_path / "model.pkl")
    for loaded in (joblib.load(path), persist_load(path)):
        assert torch.equal(loaded["net"].weight, net.weight)
        assert isinstance(loaded["net"].weight, torch.nn.Parameter)
        assert loaded["net"].weight.requires_grad
        assert not loaded["frozen"].requires_grad
        assert loaded["half"].dtype == torch.bfloat16
        assert torch.equal(loaded["half"], payload["half"])
        assert loaded["count"].item() == 7 and loaded["count"].dtype == torch.int64


def persist_load(path: Path) -> dict:
    """The plain pickle reader (what MLflow's pyfunc wrapper uses besides joblib)."""
    with open(path, "rb") as handle:
        return pickle.load(handle)
