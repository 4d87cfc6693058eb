"""The FER2013 driver reports one run per architecture: the newest one the experiment name
tracked (a name run again keeps its earlier runs in MLflow)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fer2013_accuracy.py"


def _driver():
    spec = importlib.util.spec_from_file_location("fer2013_accuracy_runs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _run(run_id: str, arch: str) -> SimpleNamespace:
    return SimpleNamespace(info=SimpleNamespace(run_id=run_id),
                           data=SimpleNamespace(tags={"architecture": arch}))


def test_only_the_newest_run_of_each_architecture_is_reported() -> None:
    newest_first = [_run("c", "baseline_cnn"), _run("b", "partition_cnn"),
                    _run("a", "baseline_cnn")]
    kept = _driver().newest_per_architecture(newest_first)
    assert [r.info.run_id for r in kept] == ["c", "b"]
