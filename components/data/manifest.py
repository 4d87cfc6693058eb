"""The sample manifest: one row per sample, the same shape for every source.

Every later stage reads samples through this table, never through a source's own layout, so
adding a source means writing one module that returns a manifest. Image references are file
paths, or ``<array>.npy#<index>`` for sources stored as one array (FER2013 pixels), which
:mod:`components.data.io` knows how to read.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from components.data.labels import CANONICAL_LABELS
from components.errors import DataError

SPLITS: tuple[str, ...] = ("train", "val", "test")
# Set by validation (``keep_official_test``) on test rows an exclusion rule hit but that stay
# in the official test split; preprocess leaves them out of ``test_dedup``.
EXCLUDED_COLUMN = "excluded_reason"
DEDUP_SPLIT = "test_dedup"  # preprocessed test split without the flagged rows
MODALITIES: tuple[str, ...] = ("color", "depth", "color2d", "frames")

# Column -> pandas dtype. Optional columns of a row are null (None / pd.NA).
MANIFEST_SCHEMA: dict[str, str] = {
    "id": "string",
    "source": "string",
    "split": "string",
    "label": "string",
    "color": "string",
    "depth": "string",
    "color2d": "string",
    "frames": "string",
    "width": "Int64",
    "height": "Int64",
    "channels": "Int64",
    "n_frames": "Int64",
    "subject": "string",
    "content_hash": "string",
    # JSON: {"color": [[lx, ly, rx, ry], ...one per frame], "color2d": [...]} in pixels, when the
    # source knows the eye centres (synthetic renders, datasets shipped with landmarks).
    "landmarks": "string",
}
REQUIRED_COLUMNS: tuple[str, ...] = tuple(MANIFEST_SCHEMA)


def content_hash(pixels: np.ndarray) -> str:
    """Hash decoded pixels with their shape, so re-encoded copies of one image collide."""
    array = np.ascontiguousarray(pixels)
    digest = hashlib.sha1(str(array.shape).encode() + str(array.dtype).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def hash_parts(*parts: np.ndarray) -> str:
    """One hash over several modalities of a sample (e.g. colour + depth)."""
    return hashlib.sha1("".join(content_hash(p) for p in parts).encode()).hexdigest()


def build_manifest(rows: list[dict]) -> pd.DataFrame:
    """Make a typed manifest from row dicts; missing optional columns become null.

    Extra source-specific columns (e.g. FER+ votes, synthetic pose) are kept after the schema.

    Raises:
        DataError: no rows, or a row has an unknown split or a non-canonical label.
    """
    if not rows:
        raise DataError("no samples found: the source produced an empty manifest")
    frame = pd.DataFrame(rows)
    for column, dtype in MANIFEST_SCHEMA.items():
        if column not in frame:
            frame[column] = pd.NA
        frame[column] = frame[column].astype(dtype)
    extras = [c for c in frame.columns if c not in MANIFEST_SCHEMA]
    frame = frame[list(REQUIRED_COLUMNS) + extras]
    _check_values(frame)
    return frame.reset_index(drop=True)


def _check_values(frame: pd.DataFrame) -> None:
    bad_split = frame.loc[~frame["split"].isin(SPLITS), "split"]
    if len(bad_split):
        raise DataError(f"unknown split {bad_split.iloc[0]!r}; expected one of {SPLITS}")
    bad_label = frame.loc[~frame["label"].isin(CANONICAL_LABELS), "label"]
    if len(bad_label):
        raise DataError(f"label {bad_label.iloc[0]!r} is not canonical")
    if frame["id"].duplicated().any():
        dup = frame.loc[frame["id"].duplicated(), "id"].iloc[0]
        raise DataError(f"sample id {dup!r} appears more than once in the manifest")


def write_manifest(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write the manifest as parquet (atomically, so a crash never leaves half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest written by :func:`write_manifest`.

    Raises:
        DataError: the file is missing or lacks manifest columns.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: manifest not found (run the ingest stage first)")
    frame = pd.read_parquet(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame]
    if missing:
        raise DataError(f"{path}: not a ferops manifest, missing columns {missing}")
    return frame


def manifest_digest(frame: pd.DataFrame) -> str:
    """A stable digest of the manifest's identity columns, used as the dataset lineage id."""
    keys = frame[["id", "split", "label", "content_hash"]].astype("string").fillna("")
    text = "\n".join("|".join(row) for row in keys.itertuples(index=False))
    return hashlib.sha1(text.encode()).hexdigest()


def modality_of(frame: pd.DataFrame) -> str:
    """Name the task a manifest serves: ``video`` (clips), ``rgbd`` (depth present) or ``image``."""
    if frame["frames"].notna().any():
        return "video"
    if frame["depth"].notna().any():
        return "rgbd"
    return "image"
