"""The no-op benchmark's account of what DVC re-checks, read from a lock file."""

from __future__ import annotations

from pathlib import Path

from benchmarks.noop_repro import cost_lines, dependency_files, pipeline_yaml_bytes

LOCK = """schema: '2.0'
stages:
  ingest:
    deps:
    - {path: data, md5: a.dir, nfiles: 1000}
    - {path: pipelines/ingest.py, md5: b}
  train@x:
    deps:
    - {path: artifacts/ingest, md5: c.dir, nfiles: 2}
"""


def test_a_folder_counts_its_files_once_per_stage_that_declares_it(tmp_path: Path) -> None:
    (tmp_path / "dvc.lock").write_text(LOCK)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / "dvc.yaml").write_text("stages: {}\n")
    per_stage = dependency_files(tmp_path / "dvc.lock")
    assert per_stage == {"ingest": 1001, "train@x": 2}
    sizes = pipeline_yaml_bytes(tmp_path)
    assert sorted(sizes) == ["claims/dvc.yaml", "dvc.lock", "dvc.yaml"]
    text = "\n".join(cost_lines(per_stage, sizes))
    assert "1,003 over 2 stages" in text and "ingest 1,001" in text
