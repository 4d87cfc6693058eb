"""The members-at-once benchmark on a tiny ensemble: both layouts trained through the
platform's loop, compared in the same run, the results files written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import member_processes


def test_both_layouts_are_timed_and_compared(tmp_path: Path) -> None:
    code = member_processes.main(["--width", "0.125", "--samples", "64", "--batch-size", "16",
                                  "--precision", "fp32", "--repeats", "1", "--name", "mp",
                                  "--out-dir", str(tmp_path)])
    assert code == 0
    payload = json.loads((tmp_path / "mp.json").read_text())
    assert set(payload["runs"]) == {"in turn", "at once"}
    for layout in ("in turn", "at once"):
        assert len(payload["runs"][layout]) == 1
        assert payload["median"][layout]["train_images_per_second"] > 0
    assert payload["speedup_wall"] == pytest.approx(
        payload["median"]["in turn"]["wall_seconds"]
        / payload["median"]["at once"]["wall_seconds"])
    assert [row[1] for row in payload["layouts"]] == [1, 2]
    text = (tmp_path / "mp.md").read_text()
    assert "At once against in turn, same run" in text and "out_dir" not in text


def test_an_ensemble_needs_two_members() -> None:
    with pytest.raises(SystemExit):
        member_processes.parse_args(["--members", "1"])
