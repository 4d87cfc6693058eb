"""Seed 003, steps S200-S300: one occluded twin per train/val sample, mixed 1:1, no leakage.

Every train and val row gets exactly one occluded twin in its own split (so a twin can never
leak across splits, methods.md 4.2), which makes each split exactly half clean, half occluded.
The test split stays clean; beside it an **evaluation-only** occluded test set is built at fixed
occlusion levels (rows ``<id>__occ<pct>`` with ``occlusion_level`` set). Downstream, preprocess
writes those rows to separate ``test_occ<pct>`` arrays; they must never be trained on.

Each occlusion draws from a generator seeded by (params seed, new sample id), so the output is
byte-identical for the same seed whatever the worker count or row order of processing.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from components.augment.apply import Occluded, occlude_clip, occlude_still
from components.augment.config import KINDS, AugmentConfig, level_tag
from components.augment.geometry import eyes_for, parse_landmarks
from components.augment.occluders import draw_spec
from components.data.io import list_frame_files, read_frames, read_image, write_image
from components.data.manifest import (
    MANIFEST_SCHEMA,
    content_hash,
    hash_parts,
    manifest_digest,
)
from components.errors import DataError
from components.pool import process_pool

TWIN_SUFFIX: str = "__occ"
TWIN_SPLITS: tuple[str, ...] = ("train", "val")
TEST_SPLIT: str = "test"
AUGMENT_COLUMNS: dict[str, str] = {
    "occluded": "boolean",
    "twin_of": "string",
    "occluder": "string",
    "occluder_fill": "string",
    "occlusion_area": "Float64",
    "occlusion_level": "Float64",
}
# Columns an occluded twin rewrites; everything else (label, subject, landmarks...) is inherited.
_REWRITTEN: tuple[str, ...] = ("id", "color", "depth", "color2d", "frames", "content_hash")
# Below this many occlusions the process pool costs more than it saves.
SERIAL_BELOW: int = 64
IMAGES_DIR: str = "images"
EVALUATION_NOTE: str = (
    "Rows with occlusion_level set (ids <id>__occ<pct>, split test) are the occluded test set "
    "for evaluation only; preprocess writes them to separate test_occ<pct> arrays. Train and "
    "val are each exactly 1:1 clean:occluded, every twin in its source's split."
)


@dataclass(frozen=True)
class Task:
    """One occlusion to make: which input row, the new id, and the fixed level (test set)."""

    position: int
    new_id: str
    level: float | None


@dataclass(frozen=True)
class Context:
    """What every worker needs besides its rows: settings, output folder, texture donors."""

    cfg: AugmentConfig
    out_dir: str
    donors: dict[str, tuple[tuple[str, str, str], ...]]


@dataclass
class AugmentResult:
    """The augmented manifest with the report and flat metrics describing it."""

    manifest: pd.DataFrame
    report: dict[str, Any]
    metrics: dict[str, float]


def plan_tasks(frame: pd.DataFrame, cfg: AugmentConfig) -> list[Task]:
    """One twin task per train/val row (none when ``cfg.twins`` is off: clean-only training),
    one task per test row and configured level."""
    tasks: list[Task] = []
    for position, (sample_id, split) in enumerate(zip(frame["id"], frame["split"], strict=True)):
        if split in TWIN_SPLITS and cfg.twins:
            tasks.append(Task(position, f"{sample_id}{TWIN_SUFFIX}", None))
        elif split == TEST_SPLIT:
            for level in cfg.test_levels:
                tasks.append(Task(position, f"{sample_id}{TWIN_SUFFIX}{level_tag(level)}", level))
    return tasks


def sample_rng(seed: int, key: str, purpose: str = "") -> np.random.Generator:
    """A generator private to one (seed, sample, purpose), independent of processing order."""
    digest = hashlib.sha256(f"{key}\x00{purpose}".encode()).digest()
    words = np.frombuffer(digest[:16], dtype=np.uint32).tolist()
    return np.random.default_rng([int(seed), *words])


def safe_stem(sample_id: str) -> str:
    """A file-name-safe stem for an id; a hash suffix keeps sanitised ids distinct."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", sample_id).strip("._") or "sample"
    if stem != sample_id:
        stem = f"{stem}-{hashlib.sha1(sample_id.encode()).hexdigest()[:8]}"
    return stem


def augment_manifest(
    frame: pd.DataFrame,
    cfg: AugmentConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
    serial_below: int = SERIAL_BELOW,
) -> AugmentResult:
    """Occlude the manifest's samples, write the images under ``out_dir/images``.

    Returns the manifest (originals first, unchanged, then the occluded rows in input order),
    the report and the metrics; writing them is the pipeline's job.

    Raises:
        DataError: the manifest already holds occluded rows, an image cannot be read, or a new
            id collides with an existing one.
    """
    frame = _strip_clean_augment_columns(frame)
    out_dir = Path(out_dir)
    images = out_dir / IMAGES_DIR
    if images.exists():  # stale twins of a previous run would survive otherwise
        shutil.rmtree(images)
    tasks = plan_tasks(frame, cfg)
    _check_new_ids(frame, tasks)
    context = Context(cfg, str(out_dir), _donors(frame))
    records = _row_dicts(frame)
    rows = [records[task.position] for task in tasks]
    results = _run(list(zip(rows, tasks, strict=True)), context, progress, serial_below)
    manifest = _assemble(frame, tasks, results)
    report, metrics = summarise(manifest, cfg, frame)
    return AugmentResult(manifest, report, metrics)


def _strip_clean_augment_columns(frame: pd.DataFrame) -> pd.DataFrame:
    if "occluded" in frame and frame["occluded"].fillna(False).astype(bool).any():
        raise DataError(
            "input manifest already holds occluded rows; augment reads the validated manifest "
            "(artifacts/validate/manifest.parquet), not its own output"
        )
    return frame.drop(columns=[c for c in AUGMENT_COLUMNS if c in frame]).reset_index(drop=True)


def _check_new_ids(frame: pd.DataFrame, tasks: list[Task]) -> None:
    existing = set(frame["id"])
    for task in tasks:
        if task.new_id in existing:
            raise DataError(f"occluded id {task.new_id!r} already exists in the input manifest")


def _donors(frame: pd.DataFrame) -> dict[str, tuple[tuple[str, str, str], ...]]:
    """Per split, (id, kind, ref) of images that can lend a texture patch (same split only)."""
    donors: dict[str, list[tuple[str, str, str]]] = {}
    for row in frame[["id", "split", "color", "frames"]].itertuples(index=False):
        if isinstance(row.color, str):
            donors.setdefault(row.split, []).append((row.id, "color", row.color))
        elif isinstance(row.frames, str):
            donors.setdefault(row.split, []).append((row.id, "frames", row.frames))
    return {split: tuple(items) for split, items in donors.items()}


def _row_dicts(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The columns a worker reads, as plain picklable dicts with None for nulls."""
    keys = ["id", "split", "color", "depth", "color2d", "frames", "landmarks"]
    records = frame[keys].astype(object).to_dict("records")
    return [{k: (None if pd.isna(v) else str(v)) for k, v in row.items()} for row in records]


# --- running the tasks ------------------------------------------------------------------------

_WORKER_CONTEXT: Context | None = None


def _init_worker(context: Context) -> None:
    global _WORKER_CONTEXT
    _WORKER_CONTEXT = context


def _run_chunk(chunk: list[tuple[dict[str, Any], Task]]) -> list[dict[str, Any]]:
    assert _WORKER_CONTEXT is not None, "worker started without its context"
    return [occlude_row(row, task, _WORKER_CONTEXT) for row, task in chunk]


def _run(
    items: list[tuple[dict[str, Any], Task]], context: Context, progress: bool, serial_below: int
) -> list[dict[str, Any]]:
    workers = context.cfg.workers or os.cpu_count() or 1
    bar = tqdm(total=len(items), desc="augment", unit="sample", disable=not progress)
    results: list[dict[str, Any]] = []
    with bar:
        if workers == 1 or len(items) < serial_below:
            for row, task in items:
                results.append(occlude_row(row, task, context))
                bar.update(1)
            return results
        size = max(1, math.ceil(len(items) / (workers * 8)))
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        with process_pool(workers, _init_worker, (context,)) as pool:
            for done in pool.map(_run_chunk, chunks):
                results.extend(done)
                bar.update(len(done))
    return results


# --- one sample -------------------------------------------------------------------------------


def occlude_row(row: dict[str, Any], task: Task, context: Context) -> dict[str, Any]:
    """Read one sample, occlude every modality, write the images; return the twin's new values.

    Raises:
        DataError: an image of the sample cannot be read.
    """
    cfg = context.cfg
    rng = sample_rng(cfg.seed, task.new_id)
    spec = draw_spec(cfg, rng, task.level)
    donor = _donor_image(row, context, task) if spec.fill == "texture" else None
    landmarks = parse_landmarks(row["landmarks"], sample_id=row["id"])
    folder = Path(context.out_dir) / IMAGES_DIR / str(row["split"])
    stem = safe_stem(task.new_id)
    if row["frames"] is not None:
        refs, occluded, digest = _clip(row, landmarks, spec, donor, folder, stem)
    elif row["color"] is not None:
        refs, occluded, digest = _still(row, landmarks, spec, donor, folder, stem)
    else:
        raise DataError(f"sample {row['id']!r}: neither a colour image nor frames to occlude")
    return {
        "id": task.new_id,
        **refs,
        "content_hash": digest,
        "twin_of": row["id"],
        "occluder": spec.kind,
        "occluder_fill": spec.fill,
        "occlusion_area": round(occluded.area, 6),
        "occlusion_level": task.level,
    }


def _still(
    row: dict[str, Any],
    landmarks: dict,
    spec: Any,
    donor: np.ndarray | None,
    folder: Path,
    stem: str,
) -> tuple[dict[str, str | None], Occluded, str]:
    color = read_image(row["color"])
    depth = _depth_u16(read_image(row["depth"], depth=True)) if row["depth"] else None
    color2d = read_image(row["color2d"]) if row["color2d"] else None
    eyes = eyes_for(landmarks, "color", 0, 1, color.shape)
    eyes2d = eyes_for(landmarks, "color2d", 0, 1, color2d.shape) if color2d is not None else None
    occluded = occlude_still(
        color, eyes, spec, depth=depth, color2d=color2d, eyes2d=eyes2d, donor=donor
    )
    refs: dict[str, str | None] = {"color": None, "depth": None, "color2d": None, "frames": None}
    refs["color"] = str(write_image(folder / f"{stem}_color.png", occluded.image))
    parts = [occluded.image]
    if occluded.depth is not None:
        refs["depth"] = str(write_image(folder / f"{stem}_depth.png", occluded.depth))
        parts.append(occluded.depth)
    if occluded.color2d is not None:
        refs["color2d"] = str(write_image(folder / f"{stem}_2d.png", occluded.color2d))
        parts.append(occluded.color2d)
    digest = content_hash(parts[0]) if len(parts) == 1 else hash_parts(*parts)
    return refs, occluded, digest


def _clip(
    row: dict[str, Any],
    landmarks: dict,
    spec: Any,
    donor: np.ndarray | None,
    folder: Path,
    stem: str,
) -> tuple[dict[str, str | None], Occluded, str]:
    frames = read_frames(row["frames"])
    eyes = [eyes_for(landmarks, "color", t, len(frames), f.shape) for t, f in enumerate(frames)]
    occluded = occlude_clip(frames, eyes, spec, donor=donor)
    clip_dir = folder / stem
    assert occluded.frames is not None
    for index, frame in enumerate(occluded.frames):
        write_image(clip_dir / f"frame_{index:04d}.png", frame)
    refs: dict[str, str | None] = {"color": None, "depth": None, "color2d": None}
    refs["frames"] = str(clip_dir)
    return refs, occluded, hash_parts(*occluded.frames)


def _depth_u16(depth: np.ndarray) -> np.ndarray:
    """Depth as uint16 millimetres, the 16-bit PNG the twins are written as."""
    if depth.dtype == np.uint16:
        return depth
    return np.clip(np.rint(np.nan_to_num(depth.astype(np.float64))), 0, 65535).astype(np.uint16)


def _donor_image(row: dict[str, Any], context: Context, task: Task) -> np.ndarray | None:
    """An image of another sample of the same split to cut a texture from; None if there is
    none (or only videos), in which case the texture is procedural."""
    candidates = [d for d in context.donors.get(str(row["split"]), ()) if d[0] != row["id"]]
    if not candidates:
        return None
    rng = sample_rng(context.cfg.seed, task.new_id, "donor")
    _, kind, ref = candidates[int(rng.integers(len(candidates)))]
    if kind == "color":
        return read_image(ref)
    path = Path(ref)
    if path.is_dir():
        files = list_frame_files(path)
        return read_image(files[len(files) // 2]) if files else None
    return None


# --- assembling the manifest and the report ---------------------------------------------------


def _assemble(
    frame: pd.DataFrame, tasks: list[Task], results: list[dict[str, Any]]
) -> pd.DataFrame:
    clean = frame.copy()
    clean["occluded"] = False
    clean["twin_of"] = pd.NA
    clean["occluder"] = pd.NA
    clean["occluder_fill"] = pd.NA
    clean["occlusion_area"] = 0.0
    clean["occlusion_level"] = pd.NA
    twins = frame.iloc[[task.position for task in tasks]].copy().reset_index(drop=True)
    new = pd.DataFrame(results, columns=[*_REWRITTEN, *list(AUGMENT_COLUMNS)[1:]])
    for column in _REWRITTEN:
        twins[column] = new[column].astype(MANIFEST_SCHEMA[column])
    twins["occluded"] = True
    for column in list(AUGMENT_COLUMNS)[1:]:
        twins[column] = new[column].astype(AUGMENT_COLUMNS[column])
    out = pd.concat([clean, twins], ignore_index=True)
    for column, dtype in {**MANIFEST_SCHEMA, **AUGMENT_COLUMNS}.items():
        out[column] = out[column].astype(dtype)
    return out


def summarise(
    manifest: pd.DataFrame, cfg: AugmentConfig, source: pd.DataFrame
) -> tuple[dict[str, Any], dict[str, float]]:
    """Counts per split, per occluder kind and fill, area statistics, and the flat metrics."""
    occ = manifest[manifest["occluded"]]
    twins = occ[occ["occlusion_level"].isna()]
    levelled = occ[occ["occlusion_level"].notna()]
    splits: dict[str, Any] = {}
    for split in ("train", "val", "test"):
        part = manifest[manifest["split"] == split]
        splits[split] = {
            "clean": int((~part["occluded"]).sum()),
            "occluded": int((part["occluded"] & part["occlusion_level"].isna()).sum()),
        }
    kinds: dict[str, Any] = {}
    for kind in KINDS:
        kinds[kind] = _area_stats(twins.loc[twins["occluder"] == kind, "occlusion_area"])
        kinds[kind]["configured_range"] = list(cfg.area_bounds(kind))
    levels: dict[str, Any] = {}
    for level in cfg.test_levels:
        rows = levelled[np.isclose(levelled["occlusion_level"].astype(float), level)]
        stats = _area_stats(rows["occlusion_area"])
        stats["level"] = float(level)
        errors = (rows["occlusion_area"].astype(float) - level).abs()
        stats["abs_error_max"] = float(errors.max()) if len(rows) else 0.0
        counts = rows["occluder"].value_counts().sort_index()
        stats["kinds"] = {str(k): int(v) for k, v in counts.items()}
        levels[f"test_occ{level_tag(level)}"] = stats
    report = {
        "stage": "augment",
        "method": ("seed 003: one random occluder per train/val sample, mixed 1:1 per split"
                   if cfg.twins else "clean-only training (augment.twins: false); occluded "
                   "test set only"),
        "note": EVALUATION_NOTE,
        "params": asdict(cfg),
        "input_digest": manifest_digest(source),
        "output_digest": manifest_digest(manifest),
        "splits": splits,
        "kinds": kinds,
        "fills": {k: int(v) for k, v in twins["occluder_fill"].value_counts().sort_index().items()},
        "test_levels": levels,
        "area": _area_stats(twins["occlusion_area"]),
    }
    return report, _mix_metrics(manifest, splits, kinds, levels, twins)


def _area_stats(values: pd.Series) -> dict[str, Any]:
    numbers = values.astype(float)
    if numbers.empty:
        return {"count": 0, "mean": 0.0, "min": 0.0, "max": 0.0}
    return {
        "count": int(numbers.size),
        "mean": round(float(numbers.mean()), 6),
        "min": round(float(numbers.min()), 6),
        "max": round(float(numbers.max()), 6),
    }


def _mix_metrics(
    manifest: pd.DataFrame,
    splits: dict[str, Any],
    kinds: dict[str, Any],
    levels: dict[str, Any],
    twins: pd.DataFrame,
) -> dict[str, float]:
    metrics: dict[str, float] = {
        "n_rows": float(len(manifest)),
        "n_occluded": float(manifest["occluded"].sum()),
        "area_mean": float(_area_stats(twins["occlusion_area"])["mean"]),
    }
    for split, counts in splits.items():
        metrics[f"{split}_clean"] = float(counts["clean"])
        metrics[f"{split}_occluded"] = float(counts["occluded"])
    for kind, stats in kinds.items():
        metrics[f"kind_{kind}"] = float(stats["count"])
    for name, stats in levels.items():
        metrics[f"{name}_count"] = float(stats["count"])
        metrics[f"{name}_area_mean"] = float(stats["mean"])
    return metrics


def iter_occluded_test(manifest: pd.DataFrame) -> Iterator[tuple[int, pd.DataFrame]]:
    """The evaluation-only occluded test rows grouped by level percentage (e.g. 25 -> rows)."""
    levelled = manifest[manifest["occlusion_level"].notna()]
    for level, rows in levelled.groupby(levelled["occlusion_level"].astype(float), sort=True):
        yield level_tag(level), rows
