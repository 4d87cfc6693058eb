"""Running the chain over a manifest: planning per task, parallel chunks, ordered writes.

Rows are split by task (``image`` for stills, RGB-D included; ``video`` for clips) and by
output split (``train``/``val``/``test``, and ``test_occ<pct>`` for the occluded test set).
Chunks go to a process pool and come back in submission order, so the arrays follow the
manifest order whatever the worker count, and the same inputs give byte-identical files.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from components.data.labels import label_index
from components.data.manifest import SPLITS
from components.errors import DataError
from components.pool import process_pool
from components.preprocess.config import PreprocessConfig
from components.preprocess.outputs import ArraySink
from components.preprocess.process import STILL_MODALITIES, ChunkResult, TaskPlan, process_chunk

log = logging.getLogger(__name__)

TASKS: tuple[str, ...] = ("image", "video")
MAX_CHUNK = 512  # rows per chunk at most (48 px crops); photos and clips get smaller chunks
CHUNKS_PER_WORKER = 8  # enough chunks that a slow one does not leave a core idle
ROW_FIELDS: tuple[str, ...] = ("id", "color", "depth", "color2d", "frames", "landmarks")


def task_of(frame: pd.DataFrame) -> pd.Series:
    """``video`` for rows with a clip, ``image`` for every still (2-D or RGB-D)."""
    return pd.Series(np.where(frame["frames"].notna(), "video", "image"), index=frame.index)


def output_split(frame: pd.DataFrame) -> pd.Series:
    """The output split of each row: its split, or ``test_occ<pct>`` when it has a level.

    Raises:
        DataError: an occlusion level outside [0, 1].
    """
    splits = frame["split"].astype(str)
    if "occlusion_level" not in frame:
        return splits
    level = pd.to_numeric(frame["occlusion_level"], errors="coerce")
    has_level = level.notna()
    if ((level[has_level] < 0) | (level[has_level] > 1)).any():
        bad = level[has_level & ((level < 0) | (level > 1))].iloc[0]
        raise DataError(f"manifest column occlusion_level: {bad} is outside [0, 1]")
    pct = (level[has_level] * 100).round().astype(int).astype(str)
    return splits.where(~has_level, "test_occ" + pct.reindex(frame.index).fillna(""))


def split_order(names: list[str]) -> list[str]:
    """Standard splits first, then the occluded test sets by rising level."""
    occ = [n for n in names if n not in SPLITS]
    occ.sort(key=lambda n: int(n.removeprefix("test_occ")))
    return [s for s in SPLITS if s in names] + occ


def plan_task(frame: pd.DataFrame, task: str, config: PreprocessConfig) -> TaskPlan:
    """Decide side, channel count and modalities for every sample of one task.

    Channels are 1 when ``grayscale`` is set or every colour input is grey (FER2013), else 3
    (grey inputs are repeated), so one task's arrays always stack.
    """
    channels_col = pd.to_numeric(frame["channels"], errors="coerce")
    all_grey = bool(channels_col.notna().all() and (channels_col == 1).all())
    channels = 1 if config.grayscale or all_grey else 3
    if task == "video":
        return TaskPlan(task, config.clip_size, channels, ("frames",), config)
    modalities = tuple(m for m in STILL_MODALITIES if m == "color" or frame[m].notna().any())
    return TaskPlan(task, config.size, channels, modalities, config)


@dataclass
class SplitOutcome:
    """What one task/split produced: arrays in manifest order and the report counters."""

    ids: list[str]
    labels: list[str]
    occluded: list[bool]
    sink: ArraySink
    fallback: list[np.ndarray] = field(default_factory=list)
    rows: int = 0
    faces: int = 0
    faces_found: int = 0
    dropped_frames: int = 0
    eye_sources: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def add(self, rows: list[dict[str, Any]], result: ChunkResult) -> None:
        """Append one chunk's kept samples and counters, preserving order."""
        kept_rows = [r for r, k in zip(rows, result.kept, strict=True) if k]
        self.ids += [str(r["id"]) for r in kept_rows]
        self.labels += [str(r["label"]) for r in kept_rows]
        self.occluded += [bool(r.get("occluded") or False) for r in kept_rows]
        self.sink.write(result.arrays)
        self.fallback.append(result.fallback)
        self.rows += len(rows)
        self.faces += result.faces
        self.faces_found += result.faces_found
        self.dropped_frames += result.dropped_frames
        self.eye_sources.update(result.eye_sources)

    def report(self) -> dict[str, Any]:
        """The report entry: counts, detection and eye rates, fallbacks, drops, speed."""
        kept = len(self.ids)
        eyes_found = self.eye_sources["landmarks"] + self.eye_sources["haar"]
        fallbacks = int(sum(int(f.sum()) for f in self.fallback))
        return {
            "count": self.rows,
            "kept": kept,
            "faces": self.faces,
            "detection_rate": _rate(self.faces_found, self.faces),
            "eye_detection_rate": _rate(eyes_found, self.faces),
            "eye_sources": dict(sorted(self.eye_sources.items())),
            "fallbacks": fallbacks,
            "dropped": self.rows - kept,
            "dropped_frames": self.dropped_frames,
            "seconds": round(self.seconds, 3),
            "faces_per_s": round(self.faces / self.seconds, 1) if self.seconds > 0 else None,
        }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def resolve_workers(requested: int) -> int:
    """0 means every core this process may use."""
    if requested > 0:
        return requested
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def chunk_rows(rows: list[dict[str, Any]], workers: int, task: str) -> Iterator[list[dict]]:
    """Consecutive chunks small enough to balance ``workers`` yet large enough to batch."""
    cap = MAX_CHUNK if task == "image" else 4
    size = max(1, min(cap, -(-len(rows) // (workers * CHUNKS_PER_WORKER))))
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def run_split(
    rows: list[dict[str, Any]],
    plan: TaskPlan,
    executor: Executor | None,
    sink: ArraySink,
    *,
    workers: int,
    desc: str,
    progress: bool = True,
) -> SplitOutcome:
    """Process one task/split, in order, on ``executor`` (None = this process).

    Raises:
        DataError: from reading or parsing any row (the first failing chunk's error).
    """
    outcome = SplitOutcome([], [], [], sink)
    start = time.perf_counter()
    chunks = list(chunk_rows(rows, workers, plan.task))
    if executor is None:
        results: Iterator[ChunkResult] = (process_chunk(c, plan) for c in chunks)
    else:
        results = executor.map(process_chunk, chunks, [plan] * len(chunks))
    with tqdm(total=len(rows), desc=desc, unit=plan.task, disable=not progress) as bar:
        for chunk, result in zip(chunks, results, strict=True):
            outcome.add(chunk, result)
            bar.update(len(chunk))
    sink.close(len(outcome.ids))
    outcome.seconds = time.perf_counter() - start
    return outcome


def manifest_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Plain dicts of the columns workers need (small to pickle, no pandas in workers)."""
    columns = [c for c in (*ROW_FIELDS, "label", "occluded") if c in frame]
    subset = frame[columns].astype(object).where(frame[columns].notna(), None)
    return subset.to_dict("records")


def open_executor(workers: int) -> Executor | None:
    """A process pool for more than one worker; None runs inline (no pickling overhead)."""
    if workers <= 1:
        return None
    return process_pool(workers)


def class_names(frame: pd.DataFrame) -> list[str]:
    """The labels present in the manifest, in canonical order (the y.npy index space)."""
    return list(label_index(frame["label"].astype(str)))


def relative(path: Path, root: Path) -> str:
    """Path relative to ``root`` when inside it (reports never hold machine paths)."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return path.name
