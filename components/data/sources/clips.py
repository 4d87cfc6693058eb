"""Dynamic expressions: a folder of frames per clip, or video files decoded with OpenCV.

Layouts: ``root/<class>/<clip>/`` frame folders or ``root/<class>/<clip>.mp4`` (labels from
folder names), or any layout with ``root/labels.csv`` (``clip,label`` and optional
``subject``, ``split``; ``clip`` is the path relative to root). A clip folder may hold
``landmarks.csv`` (``frame,lx,ly,rx,ry``) with the eye centres of each frame.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from components.data.io import VIDEO_SUFFIXES, read_frames
from components.data.labels import canonical_label
from components.data.manifest import hash_parts
from components.data.sources.common import read_labels_csv, require_dir, visible_children
from components.errors import DataError

KNOWN_COLUMNS = {"clip", "label", "subject", "split"}


def scan_clips(root: str | Path, source: str = "clips") -> list[dict]:
    """Return one manifest row per clip.

    Raises:
        DataError: missing or empty root, unknown class, a clip folder without frames, an
            unreadable video, or a stray file where clips are expected.
    """
    root = require_dir(root)
    if (root / "labels.csv").exists():
        return _scan_with_csv(root, source)
    rows = []
    for class_dir in visible_children(root):
        if not class_dir.is_dir():
            raise DataError(f"{class_dir}: stray file where class folders are expected")
        label = canonical_label(class_dir.name, where=str(class_dir))
        for clip in visible_children(class_dir):
            if not (clip.is_dir() or clip.suffix.lower() in VIDEO_SUFFIXES):
                raise DataError(f"{clip}: not a clip (expected a frame folder or a video file)")
            rows.append(_clip_row(root, clip, label, {}, [], source))
    if not rows:
        raise DataError(f"{root}: no clips found")
    return rows


def _scan_with_csv(root: Path, source: str) -> list[dict]:
    labels_csv = root / "labels.csv"
    table = read_labels_csv(labels_csv, ("clip", "label"))
    extras = [c for c in table.columns if c not in KNOWN_COLUMNS]
    rows = []
    for line, record in enumerate(table.to_dict("records"), start=2):
        where = f"{labels_csv}:{line}"
        label = canonical_label(record["label"], where=where)
        clip = root / record["clip"].strip()
        if not clip.exists():
            raise DataError(f"{clip}: clip listed in {where} not found")
        rows.append(_clip_row(root, clip, label, record, extras, source))
    return rows


def _clip_row(
    root: Path, clip: Path, label: str, record: dict, extras: list[str], source: str
) -> dict:
    frames = read_frames(clip)
    first = frames[0]
    sample_id = clip.relative_to(root).with_suffix("").as_posix()
    row = {
        "id": sample_id if source == "synthetic" else f"{source}:{sample_id}",
        "source": source,
        "split": record.get("split") or None,
        "label": label,
        "frames": str(clip),
        "width": first.shape[1],
        "height": first.shape[0],
        "channels": 1 if first.ndim == 2 else first.shape[2],
        "n_frames": len(frames),
        "subject": record.get("subject") or None,
        "content_hash": hash_parts(*frames),
        "landmarks": _clip_landmarks(clip, len(frames)),
    }
    row.update({name: record[name] for name in extras})
    return row


def _clip_landmarks(clip: Path, n_frames: int) -> str | None:
    path = clip / "landmarks.csv"
    if not clip.is_dir() or not path.exists():
        return None
    table = read_labels_csv(path, ("frame", "lx", "ly", "rx", "ry"))
    try:
        eyes = table[["lx", "ly", "rx", "ry"]].to_numpy(dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{path}: eye coordinates must be numbers ({exc})") from exc
    if len(eyes) != n_frames:
        raise DataError(f"{path}: {len(eyes)} landmark rows for {n_frames} frames")
    return json.dumps({"color": eyes.round(3).tolist()})

