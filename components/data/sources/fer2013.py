"""FER2013 in its original Kaggle csv (``emotion,pixels,Usage``), plain or gzip, plus FER+.

The 35,887 48x48 grey faces are parsed once into one ``uint8`` array store (``.npy``) so later
stages read rows by reference (``<store>.npy#<row>``) without re-parsing 80 million numbers.
The dataset's own split is kept: Training -> train, PublicTest -> val, PrivateTest -> test.
FER+ (``fer2013new.csv``, aligned by row order) optionally replaces the labels by the crowd's
majority vote and adds the vote distribution as ``votes_<label>`` columns.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from components.data.labels import FER2013_CODES, canonical_label
from components.data.manifest import build_manifest, content_hash
from components.errors import DataError

SIDE = 48
USAGE_TO_SPLIT: dict[str, str] = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
FERPLUS_EMOTIONS: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
)
FERPLUS_COLUMNS: tuple[str, ...] = FERPLUS_EMOTIONS + ("unknown", "NF")
STORE_NAME = "fer2013_pixels.npy"


def read_fer2013_csv(csv_path: str | Path) -> pd.DataFrame:
    """Read and check the Kaggle csv.

    Raises:
        DataError: missing file, missing columns, a non-integer or out-of-range emotion, or an
            unknown Usage value; the message names the csv line.
    """
    path = Path(csv_path)
    if not path.is_file():
        raise DataError(f"{path}: FER2013 csv not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read csv ({exc})") from exc
    missing = {"emotion", "pixels", "Usage"} - set(frame.columns)
    if missing:
        raise DataError(f"{path}: not a FER2013 csv, missing column(s) {sorted(missing)}")
    if frame.empty:
        raise DataError(f"{path}: csv has no rows")
    _check_emotions(frame["emotion"], path)
    bad_usage = ~frame["Usage"].isin(list(USAGE_TO_SPLIT))
    if bad_usage.any():
        row = int(np.flatnonzero(bad_usage.to_numpy())[0])
        raise DataError(
            f"{path}:{row + 2}: unknown Usage {frame['Usage'].iloc[row]!r}; "
            f"expected {sorted(USAGE_TO_SPLIT)}"
        )
    return frame


def _check_emotions(emotions: pd.Series, path: Path) -> None:
    valid = emotions.str.fullmatch(r"\d+")
    codes = pd.to_numeric(emotions.where(valid), errors="coerce")
    bad = (~valid) | (codes >= len(FER2013_CODES))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path}:{row + 2}: emotion {emotions.iloc[row]!r} is not an integer in "
            f"0..{len(FER2013_CODES) - 1}"
        )


def parse_pixels(pixels: pd.Series, path: Path) -> np.ndarray:
    """Parse the space-separated pixel strings into a (N, 48, 48) uint8 array.

    Fast path: one vectorised parse of all rows; only when the total count is off do we walk
    the rows to name the first bad one.

    Raises:
        DataError: a row has the wrong number of values, a non-integer or a value > 255.
    """
    expected = SIDE * SIDE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            values = np.fromstring(" ".join(pixels.tolist()), dtype=np.int64, sep=" ")
    except ValueError:
        values = np.empty(0, dtype=np.int64)
    if values.size != expected * len(pixels):
        _raise_first_bad_row(pixels, path, expected)
    if values.size and (values.min() < 0 or values.max() > 255):
        flat_row = int(np.flatnonzero((values < 0) | (values > 255))[0] // expected)
        raise DataError(f"{path}:{flat_row + 2}: pixel value outside 0..255")
    return values.astype(np.uint8).reshape(len(pixels), SIDE, SIDE)


def _raise_first_bad_row(pixels: pd.Series, path: Path, expected: int) -> None:
    for row, text in enumerate(pixels.tolist()):
        tokens = text.split()
        if len(tokens) != expected:
            raise DataError(
                f"{path}:{row + 2}: {len(tokens)} pixel values, expected {expected} (48x48)"
            )
        if not all(token.isdigit() for token in tokens):
            bad = next(token for token in tokens if not token.isdigit())
            raise DataError(f"{path}:{row + 2}: pixel value {bad!r} is not an integer")
    raise DataError(f"{path}: pixel column could not be parsed")


def read_ferplus(ferplus_path: str | Path, n_rows: int) -> pd.DataFrame:
    """Read FER+ votes; rows must align one-to-one with the FER2013 csv.

    Raises:
        DataError: missing file, missing vote columns, or a row count that differs.
    """
    path = Path(ferplus_path)
    if not path.is_file():
        raise DataError(f"{path}: FER+ label file not found")
    votes = pd.read_csv(path)
    missing = [c for c in FERPLUS_COLUMNS if c not in votes]
    if missing:
        raise DataError(f"{path}: not a FER+ file, missing vote column(s) {missing}")
    if len(votes) != n_rows:
        raise DataError(
            f"{path}: {len(votes)} rows but the FER2013 csv has {n_rows}; FER+ joins by row order"
        )
    return votes[list(FERPLUS_COLUMNS)].fillna(0).astype(np.int64)


def ferplus_majority(votes: pd.DataFrame) -> pd.Series:
    """FER+ majority labels: drop single (outlier) votes, then keep a label with > 50 % of the
    remaining votes; unknown, not-a-face and no-majority rows become null (to be dropped).

    This follows the FER+ authors' "majority" mode, which is why ties are dropped rather than
    broken arbitrarily.
    """
    counts = votes.to_numpy(dtype=np.float64, copy=True)
    counts[counts <= 1] = 0
    totals = counts.sum(axis=1)
    winner = counts.argmax(axis=1)
    has_majority = counts.max(axis=1) > 0.5 * totals
    names = np.array(FERPLUS_COLUMNS, dtype=object)[winner]
    is_emotion = np.isin(names, FERPLUS_EMOTIONS)
    labels = np.where(has_majority & is_emotion & (totals > 0), names, None)
    return pd.Series(labels, index=votes.index, dtype="object")


def load_fer2013(
    csv_path: str | Path, store_dir: str | Path, ferplus: str | Path | None = None
) -> pd.DataFrame:
    """Ingest FER2013 into a manifest whose images live in ``store_dir/fer2013_pixels.npy``.

    With ``ferplus`` the labels are FER+ majority votes (8 classes incl. contempt) and rows
    without a majority, or judged unknown / not a face, are left out; ``votes_*`` columns hold
    the normalised vote distribution.

    Raises:
        DataError: see :func:`read_fer2013_csv`, :func:`parse_pixels`, :func:`read_ferplus`.
    """
    path = Path(csv_path)
    frame = read_fer2013_csv(path)
    pixels = parse_pixels(frame["pixels"], path)
    store = Path(store_dir) / STORE_NAME
    store.parent.mkdir(parents=True, exist_ok=True)
    np.save(store, pixels)
    labels = pd.Series([FER2013_CODES[int(code)] for code in frame["emotion"]], dtype="object")
    votes = None
    if ferplus is not None:
        votes = read_ferplus(ferplus, len(frame))
        labels = ferplus_majority(votes)
    rows = _manifest_rows(frame, pixels, labels, votes, store)
    return build_manifest(rows)


def _manifest_rows(
    frame: pd.DataFrame,
    pixels: np.ndarray,
    labels: pd.Series,
    votes: pd.DataFrame | None,
    store: Path,
) -> list[dict]:
    splits = frame["Usage"].map(USAGE_TO_SPLIT).tolist()
    vote_share = None
    if votes is not None:
        emotion_votes = votes[list(FERPLUS_EMOTIONS)].to_numpy(dtype=np.float64)
        totals = emotion_votes.sum(axis=1, keepdims=True)
        vote_share = np.divide(emotion_votes, totals, out=np.zeros_like(emotion_votes),
                               where=totals > 0)
    rows = []
    for index, label in enumerate(labels.tolist()):
        if label is None:
            continue
        row = {
            "id": f"fer2013_{index:05d}",
            "source": "fer2013",
            "split": splits[index],
            "label": canonical_label(label),
            "color": f"{store.as_posix()}#{index}",
            "width": SIDE,
            "height": SIDE,
            "channels": 1,
            "n_frames": 0,
            "content_hash": content_hash(pixels[index]),
        }
        if vote_share is not None:
            for name, share in zip(FERPLUS_EMOTIONS, vote_share[index], strict=True):
                row[f"votes_{canonical_label(name)}"] = float(share)
        rows.append(row)
    return rows
