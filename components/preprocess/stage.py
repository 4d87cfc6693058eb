"""The whole preprocessing stage over a manifest, from rows to files on disk.

Layout (docs/architecture.md): ``<out>/<task>/<split>/{color,depth,color2d,frames}.npy``
(float16 in [0, 1]) with ``y.npy``, ``ids.npy``, ``occluded.npy``, ``fallback.npy``;
``<out>/<task>/meta.json``; ``<out>/report.json``; ``<out>/metrics.json``;
``<out>/contact_sheet.png``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from components.data.io import read_frames, read_image
from components.data.manifest import DEDUP_SPLIT, EXCLUDED_COLUMN
from components.errors import DataError
from components.jsonio import write_json
from components.preprocess.config import PreprocessConfig
from components.preprocess.outputs import (
    ArraySink,
    contact_sheet,
    task_split_metrics,
    write_labels,
    write_subset,
)
from components.preprocess.runner import (
    TASKS,
    class_names,
    manifest_rows,
    open_executor,
    output_split,
    plan_task,
    resolve_workers,
    run_split,
    split_order,
    task_of,
)
from components.timings import split_timings, write_timings

log = logging.getLogger(__name__)
SHEET_SIDE = 96  # raw images are shown at this side on the contact sheet


def preprocess_manifest(
    frame: pd.DataFrame, config: PreprocessConfig, out_dir: str | Path, *, progress: bool = True
) -> dict[str, Any]:
    """Preprocess every row of ``frame`` into ``out_dir``; return the report dict.

    Raises:
        DataError: the manifest is empty, an image cannot be read, or a landmarks cell or
            occlusion level is malformed.
    """
    if frame.empty:
        raise DataError("preprocess: the manifest has no rows")
    out = Path(out_dir)
    frame = frame.reset_index(drop=True)
    classes = class_names(frame)
    index_of = {name: i for i, name in enumerate(classes)}
    tasks, splits = task_of(frame), output_split(frame)
    workers = resolve_workers(config.workers)
    report: dict[str, Any] = {"classes": classes, "workers": workers, "tasks": {}}
    started = time.perf_counter()
    executor = open_executor(workers)
    try:
        for task in TASKS:
            subset = frame[tasks == task]
            if subset.empty:
                continue
            plan = plan_task(subset, task, config)
            entries, shapes = {}, {}
            for split in split_order(sorted(set(splits[subset.index]))):
                rows = manifest_rows(subset[splits[subset.index] == split])
                folder = out / task / split
                sink = ArraySink(folder, len(rows), _empty_shapes(plan))
                outcome = run_split(rows, plan, executor, sink, workers=workers,
                                    desc=f"preprocess {task}/{split}", progress=progress)
                fallback = np.concatenate(outcome.fallback) if outcome.fallback else []
                write_labels(folder, outcome.ids, [index_of[x] for x in outcome.labels],
                             outcome.occluded, fallback)
                entries[split] = outcome.report()
                shapes[split] = {m: [len(outcome.ids), *s] for m, s in _empty_shapes(plan).items()}
                if split == "test":
                    dedup = _write_dedup(subset, outcome.ids, folder)
                    if dedup is not None:
                        entries[DEDUP_SPLIT] = {
                            "count": len(outcome.ids), "kept": dedup,
                            "dropped": len(outcome.ids) - dedup,
                            "fallbacks": int(np.load(out / task / DEDUP_SPLIT
                                                     / "fallback.npy").sum()),
                            "faces_per_s": None, "derived_from": "test",
                        }
                        shapes[DEDUP_SPLIT] = {m: [dedup, *s]
                                               for m, s in _empty_shapes(plan).items()}
            report["tasks"][task] = entries
            write_json(out / task / "meta.json", {
                "task": task,
                "classes": classes,
                "modalities": list(plan.modalities),
                "channels": plan.channels,
                "size": plan.size,
                "clip_frames": config.clip_frames if task == "video" else None,
                "layout": "N,T,C,H,W" if task == "video" else "N,C,H,W",
                "dtype": "float16",
                "splits": shapes,
                "params": config.as_dict(),
            })
    finally:
        if executor is not None:
            executor.shutdown()
    report["seconds"] = round(time.perf_counter() - started, 3)
    stored, timings = split_timings(report)
    write_json(out / "report.json", stored)
    write_json(out / "metrics.json", task_split_metrics(stored))
    write_timings(out, "preprocess", timings)
    write_sheet(frame, tasks, splits, out, config.contact_sheet_examples)
    return report


def _write_dedup(subset: pd.DataFrame, ids: list[str], test_folder: Path) -> int | None:
    """Write ``test_dedup`` beside ``test``: the test rows validation flagged are left out.

    Only manifests validated with ``keep_official_test`` carry flagged test rows (column
    ``excluded_reason``); for the others ``test`` is already de-duplicated and nothing is
    written. Returns the number of rows kept, or None.
    """
    if EXCLUDED_COLUMN not in subset:
        return None
    flagged = set(subset.loc[subset[EXCLUDED_COLUMN].notna(), "id"].astype(str))
    if not flagged:
        return None
    keep = np.array([i not in flagged for i in ids], dtype=bool)
    write_subset(test_folder, test_folder.parent / DEDUP_SPLIT, keep)
    return int(keep.sum())


def _empty_shapes(plan) -> dict[str, tuple[int, ...]]:
    """Per-sample shape of each modality array of a task."""
    side = plan.size
    if plan.task == "video":
        return {"frames": (plan.config.clip_frames, plan.channels, side, side)}
    return {m: ((1 if m == "depth" else plan.channels), side, side) for m in plan.modalities}


def write_sheet(frame: pd.DataFrame, tasks: pd.Series, splits: pd.Series, out: Path,
                examples: int) -> Path:
    """The contact sheet: clean input, occluded twin, and both after preprocessing.

    Occluded rows whose clean twin is in the manifest come first (in manifest order), then
    other rows fill the columns. Returns the path of ``contact_sheet.png``.
    """
    task = "image" if (tasks == "image").any() else "video"
    subset = frame[tasks == task]
    ids = set(subset["id"].astype(str))
    pairs: list[tuple[str | None, str | None]] = []
    if "twin_of" in subset and "occluded" in subset:
        occluded = subset[subset["occluded"].fillna(False).astype(bool)]
        for occ_id, twin in zip(occluded["id"].astype(str), occluded["twin_of"], strict=True):
            if len(pairs) < examples and pd.notna(twin) and str(twin) in ids:
                pairs.append((str(twin), occ_id))
    used = {i for pair in pairs for i in pair}
    for clean_id in subset["id"].astype(str):
        if len(pairs) >= examples:
            break
        if clean_id not in used:
            pairs.append((clean_id, None))
    by_id = subset.assign(_split=splits[subset.index]).set_index(subset["id"].astype(str))
    located = _locate_outputs(out / task)
    rows = [
        ("clean", [_raw(by_id, c) for c, _ in pairs]),
        ("occluded", [_raw(by_id, o) for _, o in pairs]),
        ("clean preprocessed", [_processed(located, c) for c, _ in pairs]),
        ("occluded preprocessed", [_processed(located, o) for _, o in pairs]),
    ]
    return contact_sheet(out / "contact_sheet.png", rows)


def _locate_outputs(task_dir: Path) -> dict[str, tuple[Path, int]]:
    """Map each written id to (array file, row) for the contact sheet."""
    found: dict[str, tuple[Path, int]] = {}
    for ids_file in sorted(task_dir.glob("*/ids.npy")):
        array = "frames.npy" if (ids_file.parent / "frames.npy").exists() else "color.npy"
        for row, sample_id in enumerate(np.load(ids_file)):
            found[str(sample_id)] = (ids_file.parent / array, row)
    return found


def _raw(by_id: pd.DataFrame, sample_id: str | None) -> np.ndarray | None:
    """The raw colour image (middle frame for clips) of a row, scaled for display."""
    if sample_id is None or sample_id not in by_id.index:
        return None
    row = by_id.loc[sample_id]
    if pd.notna(row["frames"]):
        frames = read_frames(str(row["frames"]))
        image = frames[len(frames) // 2]
    else:
        image = read_image(str(row["color"]))
    scale = SHEET_SIDE / max(image.shape[:2])
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _processed(located: dict[str, tuple[Path, int]], sample_id: str | None):
    """The preprocessed colour image (middle frame for clips) as (H, W[, 3]) float32."""
    if sample_id is None or sample_id not in located:
        return None
    path, row = located[sample_id]
    array = np.asarray(np.load(path, mmap_mode="r")[row], dtype=np.float32)
    if array.ndim == 4:  # (T, C, H, W)
        array = array[len(array) // 2]
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
