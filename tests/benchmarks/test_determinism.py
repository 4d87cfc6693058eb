"""The determinism benchmark's comparisons: files byte for byte, lock outputs by hash."""

from __future__ import annotations

from pathlib import Path

from benchmarks.determinism import compare_locks, differing_files

THEN = """stages:
  ingest:
    deps:
    - {path: components/data, md5: k.dir}
    outs:
    - {path: artifacts/ingest, md5: a.dir}
  validate:
    params:
      params.yaml: {validate: {x: 1}}
    outs:
    - {path: artifacts/validate/report.json, md5: b}
    - {path: artifacts/timings/validate.json, md5: c}
"""
NOW = """stages:
  ingest:
    deps:
    - {path: components/data, md5: k.dir}
    - {path: components/isa.py, md5: new}
    outs:
    - {path: artifacts/ingest, md5: a.dir}
  validate:
    params:
      params.yaml: {validate: {x: 2}}
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
                        "artifacts/validate/report.json": "differs (inputs changed)",
                        "artifacts/timings/validate.json": "differs (expected)",
                        "artifacts/predict/examples.json": "not in the reference lock"}
    changed = {r["output"]: r["changed_inputs"] for r in compare_locks(THEN, NOW)}
    assert changed["artifacts/validate/report.json"] == ["params.yaml:validate"]


def test_an_output_that_differs_with_the_same_inputs_is_the_machine() -> None:
    now = NOW.replace("a.dir", "z.dir")  # ingest: same code (a new dep aside), new bytes
    verdicts = {row["output"]: row["verdict"] for row in compare_locks(THEN, now)}
    assert verdicts["artifacts/ingest"] == "differs"


def test_files_are_compared_byte_for_byte_and_a_missing_one_differs(tmp_path: Path) -> None:
    left, right = tmp_path / "l", tmp_path / "r"
    for root in (left, right):
        (root / "sub").mkdir(parents=True)
        (root / "sub" / "same.png").write_bytes(b"\x00\x01")
    (left / "one.png").write_bytes(b"\x01")
    (right / "one.png").write_bytes(b"\x02")
    (left / "only_left.png").write_bytes(b"x")
    assert differing_files(left, right) == (3, ["one.png", "only_left.png"])
