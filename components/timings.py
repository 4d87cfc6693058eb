"""Timings live apart from results, so the same params give the same bytes.

A stage report that carries its own wall time differs on every run and every machine, and
DVC would see a changed output where nothing changed. Stages therefore move their timing
figures (``seconds``, ``faces_per_s``) out of their reports into
``artifacts/timings/<stage>.json``: uncached DVC metrics, kept apart from the results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.jsonio import write_json

TIMING_KEYS: frozenset[str] = frozenset({"seconds", "faces_per_s"})
TIMINGS_FOLDER = "timings"  # beside the stage folders: artifacts/timings/<stage>.json


def split_timings(report: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(report without timing keys, the timing keys in the same nesting)``."""
    kept: dict[str, Any] = {}
    timings: dict[str, Any] = {}
    for key, value in report.items():
        if key in TIMING_KEYS:
            timings[key] = value
        elif isinstance(value, dict):
            inner, inner_timings = split_timings(value)
            kept[key] = inner
            if inner_timings:
                timings[key] = inner_timings
        else:
            kept[key] = value
    return kept, timings


def timings_path(stage_out: Path, stage: str) -> Path:
    """``<parent of the stage's output folder>/timings/<stage>.json``."""
    return Path(stage_out).parent / TIMINGS_FOLDER / f"{stage}.json"


def write_timings(stage_out: Path, stage: str, timings: dict[str, Any]) -> Path:
    """Write a stage's timing figures beside the stage folders; returns the path."""
    return write_json(timings_path(stage_out, stage), timings)
