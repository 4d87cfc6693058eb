"""The ``validate`` stage entry point: params file in, outputs and exit codes out."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from components.data.manifest import write_manifest
from pipelines.validate import main

PARAMS = {"validate": {"min_samples_per_class": 5, "blank_std_threshold": 2.0,
                       "frames_range": [4, 1000], "max_image_side": 4096,
                       "exclude_duplicates": False, "exclude_leakage": True,
                       "exclude_conflicts": True, "exclude_blank": True}}


def _args(tmp_path: Path, manifest_path: Path, params: dict = PARAMS) -> list[str]:
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(params))
    return ["--params", str(params_path), "--manifest", str(manifest_path),
            "--out", str(tmp_path / "out")]


def test_main_writes_outputs_and_exits_zero(dataset, tmp_path):
    dataset.add_clean()
    manifest_path = write_manifest(dataset.manifest(), tmp_path / "ingest" / "manifest.parquet")
    assert main(_args(tmp_path, manifest_path)) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["passed"] == 1 and metrics["n_output"] == 27


def test_main_reports_hard_errors_in_one_line(dataset, tmp_path, capsys):
    dataset.add_clean()
    Path(dataset.rows[0]["color"]).write_bytes(b"not a png")
    manifest_path = write_manifest(dataset.manifest(), tmp_path / "manifest.parquet")
    assert main(_args(tmp_path, manifest_path)) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("error: validation failed: decode")
    assert "s0000_color.png" in errors[0] and "report.json" in errors[0]


def test_main_rejects_unknown_params_and_missing_manifest(tmp_path, capsys):
    bad = {"validate": {**PARAMS["validate"], "exclude_all": True}}
    assert main(_args(tmp_path, tmp_path / "none.parquet", bad)) == 2
    assert "validate: unknown key 'exclude_all'" in capsys.readouterr().err
    assert main(_args(tmp_path, tmp_path / "none.parquet")) == 2
    assert "manifest not found" in capsys.readouterr().err
