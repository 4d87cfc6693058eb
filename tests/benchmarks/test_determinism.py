"""The determinism benchmark's comparisons: files byte for byte, lock outputs by hash."""

from __future__ import annotations

from pathlib import Path

from benchmarks.determinism import compare_locks, differing_files

THEN = """stages:
  ingest:
    outs:
    - {path: artifacts/ingest, md5: a.dir}
  validate:
    outs:
    - {path: artifacts/validate/report.json, md5: b}
    - {path: artifacts/timings/validate.json, md5: c}
"""
NOW = """stages:
  ingest:
    outs:
    - {path: artifacts/ingest, md5: a.dir}
  validate:
    outs:
    - {path: artifacts/validate/report.json, md5: B}
    - {path: artifacts/timings/validate.json, md5: C}
  predict:
    outs:
    - {path: artifacts/predict/examples.json, md5: d}
"""


def test_each_output_is_same_expected_to_differ_differs_or_new() -> None:
    verdicts = {row["output"]: row["verdict"] for row in compare_locks(THEN, NOW)}
    assert verdicts == {"artifacts/ingest": "same",
                        "artifacts/validate/report.json": "differs",
                        "artifacts/timings/validate.json": "differs (expected)",
                        "artifacts/predict/examples.json": "not in the reference lock"}


def test_files_are_compared_byte_for_byte_and_a_missing_one_differs(tmp_path: Path) -> None:
    left, right = tmp_path / "l", tmp_path / "r"
    for root in (left, right):
        (root / "sub").mkdir(parents=True)
        (root / "sub" / "same.png").write_bytes(b"\x00\x01")
    (left / "one.png").write_bytes(b"\x01")
    (right / "one.png").write_bytes(b"\x02")
    (left / "only_left.png").write_bytes(b"x")
    assert differing_files(left, right) == (3, ["one.png", "only_left.png"])
