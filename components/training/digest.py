"""A fingerprint of the data a model was tested on.

The registry only compares two models when they were scored on the same test samples: a
higher UAR on an easier or smaller test set proves nothing. The digest covers what the
scores depend on (sample ids, labels and every modality array) and nothing else, so it is
the same on any machine, after any checkout or ``dvc pull`` (no mtimes, no paths).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from components.errors import DataError

# Arrays that decide a test score, in a fixed order. ``occluded``/``fallback`` flags are
# bookkeeping of preprocessing and do not change what a model sees.
DIGEST_ARRAYS: tuple[str, ...] = ("ids", "y", "color", "depth", "color2d", "frames")
REQUIRED_ARRAYS: tuple[str, ...] = ("ids", "y")
CHUNK_ROWS = 256  # rows hashed at a time, so clip splits never load whole into memory


def test_digest(task_dir: Path, split: str = "test") -> str:
    """sha256 (hex) over the ids, labels and modality arrays of one split.

    Each array contributes its name, dtype, shape and values; arrays absent from the folder
    are skipped (a colour-only task has no ``depth.npy``), so the digest changes when a
    modality appears or disappears.

    Raises:
        DataError: the split folder, ``ids.npy`` or ``y.npy`` is missing or unreadable.
    """
    folder = Path(task_dir) / split
    if not folder.is_dir():
        raise DataError(f"{folder}: split folder not found (run the preprocess stage)")
    digest = hashlib.sha256()
    for name in DIGEST_ARRAYS:
        path = folder / f"{name}.npy"
        if not path.is_file():
            if name in REQUIRED_ARRAYS:
                raise DataError(f"{path}: missing; cannot fingerprint the {split} split")
            continue
        _update(digest, name, _load(path))
    return digest.hexdigest()


def _load(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError:
        # Object arrays (ids saved as Python strings) cannot be memory-mapped.
        try:
            return np.load(path, allow_pickle=True)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: unreadable array ({exc})") from exc
    except OSError as exc:
        raise DataError(f"{path}: unreadable array ({exc})") from exc


def _update(digest: hashlib._Hash, name: str, array: np.ndarray) -> None:
    if array.dtype == object:
        # Hash object ids by their text so the digest does not depend on pickle details.
        array = np.asarray([str(item) for item in array.ravel()], dtype=str).reshape(array.shape)
    digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
    if array.ndim == 0:
        digest.update(np.ascontiguousarray(array).tobytes())
        return
    for start in range(0, len(array), CHUNK_ROWS):
        digest.update(np.ascontiguousarray(array[start:start + CHUNK_ROWS]).tobytes())
