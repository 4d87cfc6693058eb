"""Smoke run of the FER2013 accuracy benchmark on a tiny subsample of the real data."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fer2013_accuracy.py"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("fer2013_accuracy", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_smoke_run_writes_table_and_json(
    fer2013_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = _load_benchmark()
    out = tmp_path / "fer2013_accuracy.json"
    code = bench.main([
        "--data", str(fer2013_dir), "--limit", "200", "--minutes", "0.2", "--width", "0.25",
        "--archs", "baseline_cnn", "--out", str(out),
    ])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.startswith("command: python benchmarks/fer2013_accuracy.py")
    assert "torch threads" in printed
    assert "| baseline_cnn |" in printed
    assert "not measured" in printed  # anchors are labelled as references
    payload = json.loads(out.read_text())
    (row,) = payload["rows"]
    assert row["architecture"] == "baseline_cnn" and row["measured"] is True
    assert 0.0 <= row["test_accuracy"] <= 1.0 and 0.0 <= row["test_uar"] <= 1.0
    assert row["epochs"] >= 1
    assert {a["test_accuracy"] for a in payload["anchors"]} == {0.657, 0.7328}
    assert payload["machine"]["torch_threads"] >= 1
