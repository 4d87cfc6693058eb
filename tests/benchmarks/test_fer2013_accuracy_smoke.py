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


def test_model_args_parse_yaml_values_and_refuse_bare_words() -> None:
    bench = _load_benchmark()
    assert bench.parse_model_args(["dropout=0.3", "hidden=512", "block_dropout=0"]) == {
        "dropout": 0.3, "hidden": 512, "block_dropout": 0}
    with pytest.raises(bench.ConfigError, match="KEY=VALUE"):
        bench.parse_model_args(["dropout"])


def test_smoke_run_writes_table_and_json(
    fer2013_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = _load_benchmark()
    out = tmp_path / "fer2013_accuracy.json"
    code = bench.main([
        "--data", str(fer2013_dir), "--limit", "200", "--minutes", "0.4", "--width", "0.25",
        "--archs", "baseline_cnn", "hierarchical", "--model-arg", "dropout=0.3",
        "--out", str(out),
    ])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.startswith("command: python benchmarks/fer2013_accuracy.py")
    assert "torch threads" in printed
    assert "| baseline_cnn |" in printed
    assert "not measured" in printed  # anchors are labelled as references
    payload = json.loads(out.read_text())
    assert [row["architecture"] for row in payload["rows"]] == ["baseline_cnn", "hierarchical"]
    for row in payload["rows"]:
        assert row["measured"] is True and row["epochs"] >= 1
        assert 0.0 <= row["test_accuracy"] <= 1.0 and 0.0 <= row["test_uar"] <= 1.0
    assert payload["settings"]["model_args"] == {"dropout": 0.3}
    assert payload["settings"]["precision"] == "bf16" and payload["settings"]["tta"] is True
    assert {a["test_accuracy"] for a in payload["anchors"]} == {0.657, 0.7328}
    assert payload["machine"]["torch_threads"] >= 1
