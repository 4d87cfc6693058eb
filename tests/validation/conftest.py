"""Tiny real datasets for the validation tests: PNG files written in tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.data.io import write_image
from components.data.manifest import build_manifest, content_hash, hash_parts
from components.validation import ValidateConfig

CLASSES = ("anger", "happiness", "sadness")
SPLIT_SIZES = {"train": 5, "val": 2, "test": 2}


def noise(seed: int, size: tuple[int, ...] = (16, 16, 3)) -> np.ndarray:
    """A random uint8 image; each seed gives different pixels, so no accidental duplicates."""
    return np.random.default_rng(seed).integers(0, 256, size=size, dtype=np.uint8)


class DatasetBuilder:
    """Writes images under a folder and collects manifest rows pointing at them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.rows: list[dict] = []
        self._seed = 1000

    def add(self, split: str, label: str, image: np.ndarray | None = None, *,
            ident: str | None = None, depth: np.ndarray | None = None,
            source: str = "folder") -> dict:
        """Add one still (and optional depth map); returns the row."""
        self._seed += 1
        image = noise(self._seed) if image is None else image
        ident = ident or f"s{len(self.rows):04d}"
        color = write_image(self.root / f"{ident}_color.png", image)
        row = {"id": ident, "source": source, "split": split, "label": label,
               "color": str(color), "width": image.shape[1], "height": image.shape[0],
               "channels": 1 if image.ndim == 2 else image.shape[2],
               "content_hash": content_hash(image)}
        if depth is not None:
            row["depth"] = str(write_image(self.root / f"{ident}_depth.png", depth))
            row["content_hash"] = hash_parts(image, depth)
        self.rows.append(row)
        return row

    def add_clean(self, per_split: dict[str, int] | None = None,
                  classes: tuple[str, ...] = CLASSES) -> None:
        """A balanced clean set: distinct random images for each class and split."""
        for split, count in (per_split or SPLIT_SIZES).items():
            for label in classes:
                for _ in range(count):
                    self.add(split, label)

    def manifest(self) -> pd.DataFrame:
        return build_manifest(self.rows)


@pytest.fixture
def dataset(tmp_path: Path) -> DatasetBuilder:
    return DatasetBuilder(tmp_path / "data")


@pytest.fixture
def config() -> Callable[..., ValidateConfig]:
    """Config factory: the params.yaml defaults, with overrides; two decoding threads."""

    def make(**overrides) -> ValidateConfig:
        return ValidateConfig(**{"workers": 2, **overrides})

    return make
