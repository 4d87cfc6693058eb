"""RGB-D folders for BU-3DFE-like or Kinect captures.

Layout (documented in the README): ``root/labels.csv`` with ``id,label`` and optional
``subject``, ``split``, eye columns ``lx,ly,rx,ry`` (colour image) and ``lx2d,ly2d,rx2d,ry2d``
(2-D image); per sample ``<id>_color.png`` (RGB), ``<id>_depth.png`` (16-bit millimetres,
0 = no reading) and optionally ``<id>_2d.png`` from a separate 2-D camera. Other csv columns
(pose, lighting...) are kept in the manifest for per-condition evaluation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from components.data.io import read_image
from components.data.labels import canonical_label
from components.data.manifest import hash_parts
from components.data.sources.common import optional_float, read_labels_csv, require_dir
from components.errors import DataError

EYE_COLUMNS = ("lx", "ly", "rx", "ry")
EYE_COLUMNS_2D = ("lx2d", "ly2d", "rx2d", "ry2d")
KNOWN_COLUMNS = {"id", "label", "subject", "split", *EYE_COLUMNS, *EYE_COLUMNS_2D}


def scan_rgbd_folder(root: str | Path, source: str = "rgbd_folder") -> list[dict]:
    """Return manifest rows for every sample listed in ``root/labels.csv``.

    Raises:
        DataError: missing folder or csv, unknown label, a sample missing its colour or depth
            file, depth that is not single-channel 16-bit/float, or an undecodable image.
    """
    root = require_dir(root)
    labels_csv = root / "labels.csv"
    table = read_labels_csv(labels_csv, ("id", "label"))
    extras = [c for c in table.columns if c not in KNOWN_COLUMNS]
    rows = []
    for line, record in enumerate(table.to_dict("records"), start=2):
        rows.append(_sample_row(root, record, extras, f"{labels_csv}:{line}", source))
    return rows


def _sample_row(root: Path, record: dict, extras: list[str], where: str, source: str) -> dict:
    sample_id = record["id"].strip()
    label = canonical_label(record["label"], where=where)
    color_path = root / f"{sample_id}_color.png"
    depth_path = root / f"{sample_id}_depth.png"
    color2d_path = root / f"{sample_id}_2d.png"
    if not color_path.exists():
        raise DataError(f"{color_path}: colour image of sample {sample_id!r} is missing")
    if not depth_path.exists():
        raise DataError(f"{depth_path}: depth map of RGB-D sample {sample_id!r} is missing")
    color = read_image(color_path)
    depth = read_image(depth_path, depth=True)
    if depth.dtype == np.uint8:
        raise DataError(f"{depth_path}: depth must be 16-bit or float, got 8-bit")
    parts = [color, depth]
    if color2d_path.exists():
        parts.append(read_image(color2d_path))
    row = {
        "id": f"{source}:{sample_id}" if source != "synthetic" else sample_id,
        "source": source,
        "split": record.get("split") or None,
        "label": label,
        "color": str(color_path),
        "depth": str(depth_path),
        "color2d": str(color2d_path) if color2d_path.exists() else None,
        "width": color.shape[1],
        "height": color.shape[0],
        "channels": 1 if color.ndim == 2 else color.shape[2],
        "n_frames": 0,
        "subject": record.get("subject") or None,
        "content_hash": hash_parts(*parts),
        "landmarks": _landmarks(record, where),
    }
    row.update({name: record[name] for name in extras})
    return row


def _landmarks(record: dict, where: str) -> str | None:
    found = {}
    for key, columns in (("color", EYE_COLUMNS), ("color2d", EYE_COLUMNS_2D)):
        if all(c in record for c in columns):
            try:
                values = [optional_float(record[c]) for c in columns]
            except ValueError as exc:
                raise DataError(f"{where}: eye coordinate is not a number ({exc})") from exc
            if all(v is not None for v in values):
                found[key] = [values]
    return json.dumps(found) if found else None
