"""Preprocessing a chunk of manifest rows: read, align, stretch, enhance, normalise.

A chunk is the unit of parallel work. Reading is batched where the storage allows it (rows of
one ``.npy`` store come out with one fancy index instead of one call per row), geometry runs
per image (each has its own eyes), and the intensity steps run vectorised over the whole
chunk. A sample's output never depends on which chunk it landed in, so any chunking and any
worker count give byte-identical arrays.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from components.data.io import is_store_ref, open_store, parse_store_ref, read_frames, read_image
from components.errors import DataError
from components.preprocess import align, intensity
from components.preprocess.config import CROP_MAX_SIDE, PreprocessConfig
from components.preprocess.frames import resample_clip

STILL_MODALITIES: tuple[str, ...] = ("color", "depth", "color2d")


@dataclass(frozen=True)
class TaskPlan:
    """What every sample of one task turns into: side, channel count, modalities, settings."""

    task: str  # "image" (stills, RGB-D included) or "video" (clips)
    size: int
    channels: int
    modalities: tuple[str, ...]
    config: PreprocessConfig


@dataclass
class ChunkResult:
    """The processed samples of one chunk, in input order, plus what happened to each row.

    ``arrays`` hold float16 in [0, 1] for the kept rows only; ``kept`` marks which input
    rows survived (``face_policy: drop`` removes rows without a face).
    """

    kept: np.ndarray
    fallback: np.ndarray
    arrays: dict[str, np.ndarray]
    eye_sources: Counter = field(default_factory=Counter)
    faces: int = 0  # face images processed (frames for clips)
    faces_found: int = 0  # of those, located by landmarks, detection or as a crop
    dropped_frames: int = 0


def parse_landmarks(text: Any, key: str) -> list[tuple[float, float, float, float]] | None:
    """The eye points of one modality from the manifest's JSON ``landmarks`` cell.

    Returns one ``(lx, ly, rx, ry)`` per frame, or None when the cell has none for ``key``.

    Raises:
        DataError: the cell is not valid JSON or an entry is not four numbers.
    """
    if not _present(text):
        return None
    try:
        data = json.loads(str(text))
    except json.JSONDecodeError as exc:
        snippet = str(text)[:60]
        raise DataError(f"landmarks cell is not valid JSON ({exc.msg}): {snippet!r}") from exc
    points = data.get(key) if isinstance(data, dict) else None
    if not points:
        return None
    out = []
    for entry in points:
        if entry is None:
            out.append(None)
            continue
        if len(entry) != 4:
            raise DataError(f"landmarks[{key!r}] entry {entry!r} is not [lx, ly, rx, ry]")
        out.append(tuple(float(v) for v in entry))
    return out


def is_crop(shape: tuple[int, ...], has_landmarks: bool, mode: str) -> bool:
    """Whether an image is treated as an already-cropped face (no face detection).

    ``auto`` decides per image: small images (longer side <= 64 px) and images whose eyes
    are given as landmarks need no detector.
    """
    if mode != "auto":
        return mode == "crop"
    return has_landmarks or max(shape[:2]) <= CROP_MAX_SIDE


def read_colour_batch(refs: list[str]) -> list[np.ndarray]:
    """Decode the colour images of a chunk; ``store.npy#row`` refs come out in bulk.

    Rows of one store are gathered with a single sorted fancy index (one pass over the
    memory map) instead of one lookup per row.

    Raises:
        DataError: a file or store is missing or unreadable, or a row index is out of range.
    """
    images: list[np.ndarray | None] = [None] * len(refs)
    by_store: dict[str, list[tuple[int, int]]] = {}
    for position, ref in enumerate(refs):
        if is_store_ref(ref):
            store, index = parse_store_ref(ref)
            by_store.setdefault(store, []).append((position, index))
        else:
            images[position] = read_image(ref)
    for store, entries in by_store.items():
        array = open_store(store)
        indices = np.array([index for _, index in entries])
        if indices.size and (indices.max() >= len(array) or indices.min() < 0):
            raise DataError(f"{store}: row index out of range (store has {len(array)} rows)")
        order = np.argsort(indices, kind="stable")
        block = np.asarray(array[indices[order]])
        for rank, entry_index in enumerate(order):
            images[entries[entry_index][0]] = block[rank]
    return images  # type: ignore[return-value]


def process_chunk(rows: list[dict[str, Any]], plan: TaskPlan) -> ChunkResult:
    """Preprocess a chunk of manifest rows (dicts) of one task; the worker entry point.

    Raises:
        DataError: an image cannot be read or a landmarks cell is malformed.
    """
    if plan.task == "video":
        return _process_clips(rows, plan)
    return _process_stills(rows, plan)


def _process_stills(rows: list[dict[str, Any]], plan: TaskPlan) -> ChunkResult:
    config = plan.config
    canonical = config.eye_points
    colours = read_colour_batch([str(r["color"]) for r in rows])
    warped: dict[str, list[np.ndarray]] = {m: [] for m in plan.modalities}
    kept = np.zeros(len(rows), dtype=bool)
    fallback: list[bool] = []
    result = ChunkResult(kept, np.zeros(0, bool), {})
    for i, (row, colour) in enumerate(zip(rows, colours, strict=True)):
        marks = parse_landmarks(row.get("landmarks"), "color")
        located = _locate(colour, marks[0] if marks else None, config, canonical)
        result.faces += 1
        result.eye_sources[located.source] += 1
        second = None
        if "color2d" in plan.modalities and _present(row.get("color2d")):
            image2d = read_image(str(row["color2d"]))
            marks2d = parse_landmarks(row.get("landmarks"), "color2d")
            second = (image2d, _locate(image2d, marks2d[0] if marks2d else None, config, canonical))
        failed = located.fallback or (second is not None and second[1].fallback)
        result.faces_found += not located.fallback
        if failed and config.face_policy == "drop":
            continue
        kept[i] = True
        fallback.append(failed)
        if located.source == "aligned_crop" and colour.shape[:2] == (plan.size, plan.size):
            # An aligned crop already at the output size: the warp would be the identity.
            matrix = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
            warped["color"].append(intensity.to_channels(colour, plan.channels))
        else:
            matrix = align.matrix_for(located, colour.shape[:2], canonical, plan.size,
                                      rotate=plan.config.align)
            warped["color"].append(
                intensity.to_channels(align.warp(colour, matrix, plan.size), plan.channels)
            )
        if "depth" in plan.modalities:
            warped["depth"].append(_warp_depth(row, colour.shape[:2], matrix, plan.size))
        if "color2d" in plan.modalities:
            warped["color2d"].append(_warp_second(second, plan, canonical))
    result.fallback = np.array(fallback, dtype=bool)
    result.arrays = {m: finish_stills(np.stack(v) if v else None, m, plan)
                     for m, v in warped.items()}
    return result


def _present(value: Any) -> bool:
    """True for a non-null, non-empty manifest cell (null cells arrive as None/NA/NaN)."""
    if value is None or isinstance(value, list | dict):
        return value is not None
    return not bool(pd.isna(value)) and str(value) != ""


def _locate(image: np.ndarray, marks, config: PreprocessConfig, canonical) -> align.Located:
    crop = is_crop(image.shape, marks is not None, config.input)
    return align.locate(image, marks, is_crop=crop, canonical=canonical)


def _warp_depth(row: dict, colour_shape, matrix: np.ndarray, size: int) -> np.ndarray:
    """Depth through the colour image's warp (registered camera), or zeros when absent."""
    if not _present(row.get("depth")):
        return np.zeros((1, size, size), dtype=np.uint16)
    depth = read_image(str(row["depth"]), depth=True)
    depth_matrix = align.rescale_matrix(matrix, colour_shape, depth.shape[:2])
    return align.warp(depth, depth_matrix, size, nearest=True)[None]


def _warp_second(second, plan: TaskPlan, canonical) -> np.ndarray:
    """The 2-D camera image aligned by its own eyes to the same canonical positions."""
    if second is None:
        return np.zeros((plan.channels, plan.size, plan.size), dtype=np.uint8)
    image, located = second
    matrix = align.matrix_for(located, image.shape[:2], canonical, plan.size,
                              rotate=plan.config.align)
    return intensity.to_channels(align.warp(image, matrix, plan.size), plan.channels)


def finish_stills(batch: np.ndarray | None, modality: str, plan: TaskPlan) -> np.ndarray:
    """Stretch, optionally enhance and normalise a batch of aligned images of one modality."""
    config = plan.config
    if batch is None:
        channels = 1 if modality == "depth" else plan.channels
        return np.zeros((0, channels, plan.size, plan.size), dtype=np.float16)
    if modality == "depth":
        return intensity.normalise(intensity.stretch_depth(batch, config.depth_window_mm))
    low, high = config.stretch_percentiles
    stretched = (intensity.stretch_color(batch, low, high) if config.stretch
                 else np.asarray(batch, dtype=np.float32))
    if config.enhance.enabled:
        stretched = intensity.enhance(
            stretched, sigma=config.enhance.sigma, a=config.enhance.a, b=config.enhance.b
        )
    return intensity.normalise(stretched)


def _process_clips(rows: list[dict[str, Any]], plan: TaskPlan) -> ChunkResult:
    config = plan.config
    canonical = config.eye_points
    kept = np.zeros(len(rows), dtype=bool)
    fallback: list[bool] = []
    clips: list[np.ndarray] = []
    result = ChunkResult(kept, np.zeros(0, bool), {})
    for i, row in enumerate(rows):
        frames = read_frames(str(row["frames"]))
        marks = parse_landmarks(row.get("landmarks"), "color") or []
        aligned: list[np.ndarray] = []
        for index, frame in enumerate(frames):
            located = _locate(frame, marks[index] if index < len(marks) else None, config,
                              canonical)
            result.faces += 1
            result.eye_sources[located.source] += 1
            if located.fallback:
                result.dropped_frames += 1
                continue
            result.faces_found += 1
            matrix = align.matrix_for(located, frame.shape[:2], canonical, plan.size,
                                      rotate=plan.config.align)
            aligned.append(intensity.to_channels(align.warp(frame, matrix, plan.size),
                                                 plan.channels))
        used_fallback = not aligned
        if used_fallback:
            if config.face_policy == "drop":
                continue
            aligned = [
                intensity.to_channels(
                    align.warp(f, align.center_crop_matrix(*f.shape[:2], plan.size), plan.size),
                    plan.channels,
                )
                for f in frames
            ]
        kept[i] = True
        fallback.append(used_fallback)
        clips.append(finish_clip(np.stack(aligned), plan))
    result.fallback = np.array(fallback, dtype=bool)
    shape = (0, config.clip_frames, plan.channels, plan.size, plan.size)
    result.arrays = {"frames": np.stack(clips) if clips else np.zeros(shape, np.float16)}
    return result


def finish_clip(aligned: np.ndarray, plan: TaskPlan) -> np.ndarray:
    """Resample a clip's aligned frames to T, stretch per clip (no flicker), enhance, scale."""
    config = plan.config
    frames = resample_clip(aligned, config.clip_frames, config.clip_sampling)  # (T, C, H, W)
    low, high = config.stretch_percentiles
    # One set of breakpoints per channel over the whole clip keeps brightness steady in time.
    stretched = (intensity.stretch_color(frames.transpose(1, 0, 2, 3)[None], low, high)[0]
                 if config.stretch else frames.transpose(1, 0, 2, 3).astype(np.float32))
    stretched = stretched.transpose(1, 0, 2, 3)
    if config.enhance.enabled:
        stretched = intensity.enhance(
            stretched, sigma=config.enhance.sigma, a=config.enhance.a, b=config.enhance.b
        )
    return intensity.normalise(stretched)
