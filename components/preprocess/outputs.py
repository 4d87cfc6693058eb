"""Writing the stage's outputs: memory-mapped arrays, meta.json, report, contact sheet.

The trainer memory-maps the ``.npy`` files (docs/architecture.md, "Preprocessed arrays"), so
arrays are written straight into ``open_memmap`` files as chunks arrive instead of being held
in memory; a split whose rows were dropped is compacted to the kept count at the end.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

COPY_BLOCK = 4096  # samples per copy when compacting a memmap


class ArraySink:
    """Sequential writer of one split's sample arrays (``color.npy``, ``frames.npy``, ...).

    Files are created on the first chunk with room for ``capacity`` samples; :meth:`close`
    trims them to the number actually written (rows dropped by the face policy).
    """

    def __init__(self, folder: Path, capacity: int, empty_shapes: dict[str, tuple[int, ...]]):
        self.folder = folder
        self.capacity = capacity
        self.empty_shapes = empty_shapes
        self.maps: dict[str, np.memmap] = {}
        self.cursor = 0

    def write(self, arrays: dict[str, np.ndarray]) -> None:
        """Append one chunk's samples (all modalities have the same leading length)."""
        count = None
        for name, array in arrays.items():
            if name not in self.maps:
                self.folder.mkdir(parents=True, exist_ok=True)
                self.maps[name] = np.lib.format.open_memmap(
                    self.folder / f"{name}.npy", mode="w+", dtype=np.float16,
                    shape=(self.capacity, *array.shape[1:]),
                )
            self.maps[name][self.cursor : self.cursor + len(array)] = array
            count = len(array)
        self.cursor += count or 0

    def close(self, written: int) -> None:
        """Flush, trim to ``written`` samples, and create empty files for unseen modalities."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, shape in self.empty_shapes.items():
            if name not in self.maps:
                np.save(self.folder / f"{name}.npy", np.zeros((0, *shape), dtype=np.float16))
        for name, array in self.maps.items():
            array.flush()
            if written < self.capacity:
                _compact(self.folder / f"{name}.npy", array, written)
        self.maps.clear()


def _compact(path: Path, array: np.memmap, written: int) -> None:
    """Rewrite ``path`` holding only its first ``written`` samples."""
    tmp = path.with_suffix(".tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=array.dtype,
                                    shape=(written, *array.shape[1:]))
    for start in range(0, written, COPY_BLOCK):
        out[start : start + COPY_BLOCK] = array[start : start + COPY_BLOCK]
    out.flush()
    del out
    shutil.move(tmp, path)


def write_subset(source: Path, target: Path, keep: np.ndarray) -> Path:
    """Copy every per-sample array of split folder ``source`` to ``target``, rows ``keep`` only."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*.npy")):
        array = np.load(path, mmap_mode="r")
        np.save(target / path.name, np.ascontiguousarray(array[keep]))
    return target


def write_labels(folder: Path, ids: list[str], y: list[int], occluded: list[bool],
                 fallback: np.ndarray) -> None:
    """The per-sample side arrays: ``y`` (int64), ``ids`` (str), ``occluded`` and ``fallback``."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "y.npy", np.asarray(y, dtype=np.int64))
    width = max([len(i) for i in ids] + [1])
    np.save(folder / "ids.npy", np.asarray(ids, dtype=f"<U{width}"))
    np.save(folder / "occluded.npy", np.asarray(occluded, dtype=bool))
    np.save(folder / "fallback.npy", np.asarray(fallback, dtype=bool))


def task_split_metrics(report: dict[str, Any]) -> dict[str, float | int]:
    """``report.json`` flattened to ``<task>.<split>.<key>`` numbers for ``dvc metrics``."""
    metrics: dict[str, float | int] = {}
    for task, splits in report.get("tasks", {}).items():
        for split, entry in splits.items():
            for key, value in entry.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    metrics[f"{task}.{split}.{key}"] = value
    return metrics


def contact_sheet(path: Path, rows: list[tuple[str, list[np.ndarray | None]]]) -> Path:
    """Save a grid: one labelled row per kind (clean / occluded / preprocessed), one column
    per example; a missing image leaves its cell blank. Returns the path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = max([len(images) for _, images in rows] + [1])
    figure, axes = plt.subplots(len(rows), columns, figsize=(1.4 * columns, 1.5 * len(rows)),
                                squeeze=False)
    for r, (title, images) in enumerate(rows):
        for c in range(columns):
            axis = axes[r][c]
            axis.set_xticks([])
            axis.set_yticks([])
            image = images[c] if c < len(images) else None
            if image is not None:
                axis.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1)
            if c == 0:
                axis.set_ylabel(title, fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Fixed metadata so re-running the stage writes the same bytes (no timestamps in the PNG).
    figure.savefig(path, dpi=80, metadata={"Software": None})
    plt.close(figure)
    return path
