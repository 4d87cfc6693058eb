"""Data sources: each turns one raw layout into the common manifest.

:func:`ingest` is the one entry point the ingest stage and the CLI use, so a source is chosen
by name from params and every source gets the same split rules and class filtering.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.config import build_config
from components.data.labels import CANONICAL_LABELS, canonical_label
from components.data.manifest import build_manifest
from components.data.sources.clips import scan_clips
from components.data.sources.fer2013 import load_fer2013
from components.data.sources.image_folder import scan_image_folder
from components.data.sources.labelled_folder import LabelSource, scan_labelled_folder
from components.data.sources.rgbd_folder import scan_rgbd_folder
from components.data.splits import assign_splits, check_fractions
from components.errors import ConfigError, DataError

SOURCES: tuple[str, ...] = ("synthetic", "fer2013", "image_folder", "rgbd_folder", "clips")


@dataclass
class IngestConfig:
    """The ``ingest`` section of params.yaml."""

    source: str = "synthetic"
    path: str = "data/synthetic"
    ferplus: str | None = None
    classes: list | None = None
    split_seed: int = 0
    split_fractions: dict = field(
        default_factory=lambda: {"train": 0.7, "val": 0.15, "test": 0.15}
    )

    # Smoke runs and small experiments: keep at most this many train rows (a quarter as
    # many val and test rows, at least one), drawn with ``split_seed``; null keeps all.
    subsample: int | None = None
    # image_folder with a flat folder: where its labels are (a table, or a file-name
    # pattern; see components/data/sources/labelled_folder.py); null: class folders.
    labels: dict | None = None

    def __post_init__(self) -> None:
        if self.subsample is not None and self.subsample < 4:
            raise ConfigError(f"ingest.subsample: {self.subsample} must be >= 4 or null")
        if self.source not in SOURCES:
            raise ConfigError(f"ingest.source: unknown source {self.source!r}; one of {SOURCES}")
        if self.ferplus is not None and self.source != "fer2013":
            raise ConfigError("ingest.ferplus: FER+ labels apply only to source fer2013")
        if self.classes is not None:
            self.classes = [canonical_label(c, where="ingest.classes") for c in self.classes]
        check_fractions(self.split_fractions)
        if self.labels is not None:
            if self.source != "image_folder":
                raise ConfigError("ingest.labels: applies to source image_folder only")
            self.label_source()  # fail now on a bad section, not after scanning

    def label_source(self) -> LabelSource | None:
        """The parsed ``labels`` section, or None for class folders.

        Raises:
            ConfigError: an unknown key or a bad value.
        """
        if self.labels is None:
            return None
        return build_config(LabelSource, dict(self.labels), where="ingest.labels")


def ingest(cfg: IngestConfig, store_dir: str | Path) -> pd.DataFrame:
    """Read the configured source into a manifest with splits assigned and classes filtered.

    ``store_dir`` receives array stores of csv-backed sources (never ``data/``).

    Raises:
        DataError: the source's own errors, or no sample left after class filtering.
    """
    rows, left_out = _scan(cfg, Path(store_dir))
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    if cfg.classes is not None:
        frame = frame[frame["label"].isin(cfg.classes)]
        if frame.empty:
            raise DataError(f"ingest.classes {cfg.classes}: no sample has one of these labels")
    frame = frame.copy()
    frame["split"] = assign_splits(frame, cfg.split_fractions, cfg.split_seed)
    if cfg.subsample is not None:
        frame = subsample_splits(frame, cfg.subsample, cfg.split_seed)
    manifest = build_manifest(frame.to_dict("records"))
    manifest.attrs["left_out"] = left_out  # rows the source could not use, for the summary
    return manifest


def subsample_splits(frame: pd.DataFrame, train_rows: int, seed: int) -> pd.DataFrame:
    """At most ``train_rows`` train rows and ``train_rows // 4`` (>= 1) rows of each other
    split, a seeded random choice that keeps the manifest's row order."""
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(frame), dtype=bool)
    for split in sorted(set(frame["split"])):
        positions = np.flatnonzero((frame["split"] == split).to_numpy())
        cap = train_rows if split == "train" else max(1, train_rows // 4)
        keep[rng.permutation(positions)[:cap]] = True
    return frame[keep]


def _scan(cfg: IngestConfig, store_dir: Path
          ) -> tuple[list[dict] | pd.DataFrame, dict[str, Any]]:
    """The source's rows, and what it left out (per reason, with examples)."""
    path = Path(cfg.path)
    labels = cfg.label_source()
    if labels is not None:
        return scan_labelled_folder(path, labels)
    if cfg.source == "fer2013":
        return load_fer2013(path, store_dir, cfg.ferplus), {}
    if cfg.source == "image_folder":
        return scan_image_folder(path), {}
    if cfg.source == "rgbd_folder":
        return scan_rgbd_folder(path), {}
    if cfg.source == "clips":
        return scan_clips(path), {}
    return scan_synthetic(path), {}


def scan_synthetic(root: Path) -> list[dict]:
    """The rendered default: ``root/rgbd`` (rgbd_folder layout) plus ``root/clips``.

    Raises:
        DataError: the data has not been rendered yet (``ferops data synth``).
    """
    if not (root / "rgbd").is_dir():
        raise DataError(f"{root}: synthetic data not found; render it with `ferops data synth`")
    rows = scan_rgbd_folder(root / "rgbd", source="synthetic")
    if (root / "clips").is_dir():
        rows += scan_clips(root / "clips", source="synthetic")
    return rows


__all__ = ["CANONICAL_LABELS", "IngestConfig", "SOURCES", "ingest", "scan_synthetic"]
