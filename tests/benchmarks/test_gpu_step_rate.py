"""The GPU step-rate benchmark runs end to end (on the CPU here, a few samples) and writes
one row per batch size and way, each way's speed as a ratio of the bare loop's."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import gpu_step_rate


def test_the_benchmark_writes_every_way_against_the_bare_loop(tmp_path: Path) -> None:
    assert gpu_step_rate.main(["--device", "cpu", "--width", "0.25", "--samples", "96",
                               "--batch-sizes", "32,48", "--repeats", "1",
                               "--out-dir", str(tmp_path), "--name", "step_rate"]) == 0
    payload = json.loads((tmp_path / "step_rate.json").read_text())
    assert set(payload["median"]) == {"32", "48"}
    for row in payload["median"].values():
        assert set(row) == set(gpu_step_rate.WAYS) and all(v > 0 for v in row.values())
    table = (tmp_path / "step_rate.md").read_text()
    bare_rows = [line for line in table.splitlines() if "| bare |" in line]
    assert len(bare_rows) == 2  # one per batch size, each its batch size's baseline
    assert all(line.endswith("| 1.00x |") for line in bare_rows)
    assert "--device cpu" in table and payload["gpu"] == "none"
    assert str(tmp_path) not in table + json.dumps(payload)  # no machine's folder recorded
    assert payload["commit_as_read_there"] is None  # no --commit: git's reading is the commit


def test_a_given_commit_is_recorded_beside_what_git_read(tmp_path: Path) -> None:
    gpu_step_rate.main(["--device", "cpu", "--width", "0.25", "--samples", "64",
                        "--batch-sizes", "32", "--repeats", "1", "--out-dir", str(tmp_path),
                        "--commit", "abc1234"])
    payload = json.loads((tmp_path / "gpu_step_rate.json").read_text())
    assert payload["commit"] == "abc1234"
    assert payload["commit_as_read_there"] != "abc1234"
    assert "- commit: `abc1234`" in (tmp_path / "gpu_step_rate.md").read_text()
