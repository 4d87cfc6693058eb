"""Tiny manifests written in tmp_path: 2-D stills, RGB-D samples and clips with moving faces."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from components.data.io import write_image
from components.data.manifest import build_manifest, content_hash

LABELS = ("anger", "happiness", "sadness")


def noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Random pixels in [1, 254], so any occluder fill visibly changes almost every pixel."""
    return np.random.default_rng(seed).integers(1, 255, size=shape, dtype=np.uint8)


def smooth_depth(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A face-like depth map around 600 mm with a few holes (0)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    bump = 40 * np.exp(-(((yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2) / 300.0))
    depth = (600 - bump + rng.normal(0, 2, size=shape)).astype(np.uint16)
    depth[rng.random(shape) < 0.02] = 0
    return depth


def _split(index: int, n: int) -> str:
    return "train" if index < n // 2 else ("val" if index < 3 * n // 4 else "test")


def still_manifest(root: Path, n: int = 8, size: int = 48, grey: bool = False) -> pd.DataFrame:
    """2-D stills (RGB, or grey when ``grey``), no landmarks: canonical aligned crops."""
    rows = []
    for i in range(n):
        shape = (size, size) if grey else (size, size, 3)
        image = noise(shape, i)
        path = write_image(root / f"img{i}.png", image)
        rows.append(
            {
                "id": f"img/{i}",
                "source": "test",
                "split": _split(i, n),
                "label": LABELS[i % 3],
                "color": str(path),
                "width": size,
                "height": size,
                "channels": 1 if grey else 3,
                "subject": f"s{i}",
                "content_hash": content_hash(image),
            }
        )
    return build_manifest(rows)


def rgbd_manifest(root: Path, n: int = 8, size: int = 64) -> pd.DataFrame:
    """RGB-D samples with a separate 2-D camera whose face sits elsewhere and at another scale."""
    rows = []
    for i in range(n):
        color = noise((size, size, 3), 100 + i)
        depth = smooth_depth((size, size), i)
        color2d = noise((size + 16, size + 16, 3), 200 + i)
        eyes = [20.0 + i % 3, 26.0, 44.0 + i % 3, 26.0]
        eyes2d = [30.0, 34.0, 60.0, 34.0]  # 1.25x bigger face, shifted
        stem = root / f"rgbd{i}"
        rows.append(
            {
                "id": f"rgbd{i}",
                "source": "test",
                "split": _split(i, n),
                "label": LABELS[i % 3],
                "color": str(write_image(Path(f"{stem}_color.png"), color)),
                "depth": str(write_image(Path(f"{stem}_depth.png"), depth)),
                "color2d": str(write_image(Path(f"{stem}_2d.png"), color2d)),
                "width": size,
                "height": size,
                "channels": 3,
                "subject": f"s{i}",
                "content_hash": hashlib.sha1(f"rgbd{i}".encode()).hexdigest(),
                "landmarks": json.dumps({"color": [eyes], "color2d": [eyes2d]}),
            }
        )
    return build_manifest(rows)


def clip_eyes(t: int) -> list[float]:
    """Eyes of frame ``t`` of a clip whose face drifts right and down by 2 px per frame."""
    return [14.0 + 2 * t, 24.0 + t, 34.0 + 2 * t, 24.0 + t]


def clip_manifest(root: Path, n: int = 4, frames: int = 5, size: int = 64) -> pd.DataFrame:
    """Frame-folder clips with per-frame eye landmarks of a moving face."""
    rows = []
    for i in range(n):
        folder = root / f"clip{i}"
        for t in range(frames):
            write_image(folder / f"{t:03d}.png", noise((size, size, 3), 1000 * i + t))
        rows.append(
            {
                "id": f"clip{i}",
                "source": "test",
                "split": _split(i, n),
                "label": LABELS[i % 3],
                "frames": str(folder),
                "width": size,
                "height": size,
                "channels": 3,
                "n_frames": frames,
                "subject": f"s{i}",
                "content_hash": hashlib.sha1(f"clip{i}".encode()).hexdigest(),
                "landmarks": json.dumps({"color": [clip_eyes(t) for t in range(frames)]}),
            }
        )
    return build_manifest(rows)


def tree_hashes(folder: Path) -> dict[str, str]:
    """sha1 of every file under ``folder`` by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
