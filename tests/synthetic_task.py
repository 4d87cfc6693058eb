"""A tiny learnable task folder in the preprocess layout, for tests and benchmarks.

Not library code: the platform never makes data up; tests and the trainer benchmark do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from components.jsonio import write_json
from components.training.data import occlusion_percent, write_split


def make_synthetic_task(
    root: Path,
    task: str = "rgbd",
    *,
    classes: tuple[str, ...] = ("anger", "happiness", "neutral", "surprise"),
    sizes: dict[str, int] | None = None,
    size: int = 16,
    frames: int = 4,
    occlusion: tuple[int, ...] = (25,),
    seed: int = 0,
) -> Path:
    """Write a tiny learnable task folder in the preprocess layout (tests and benchmarks).

    Each class is a bright square in its own quadrant of the face (mirror-symmetric classes
    are avoided by placing them top/bottom), plus noise, so a small CNN separates them in a
    few epochs. ``rgbd`` gets color/depth/color2d, ``image`` colour only, ``video`` frames in
    which the square fades in (a neutral-to-apex clip).

    Returns:
        The task folder: ``root/image`` for ``rgbd`` and ``image`` (as preprocess writes
        stills), ``root/video`` for clips.
    """
    rng = np.random.default_rng(seed)
    sizes = sizes or {"train": 64, "val": 24, "test": 24}
    task_dir = Path(root) / ("video" if task == "video" else "image")
    splits = dict(sizes)
    for pct in occlusion:
        splits[f"test_occ{pct}"] = sizes.get("test", 24)
    for split, n in splits.items():
        y = np.arange(n) % len(classes)
        rng.shuffle(y)
        patterns = np.stack([_pattern(c, len(classes), size) for c in y])
        noise = lambda shape: rng.uniform(0, 0.3, shape)  # noqa: E731
        arrays: dict[str, np.ndarray] = {"y": y.astype(np.int64)}
        if task == "video":
            ramp = np.linspace(0.2, 1.0, frames)[None, :, None, None, None]
            base = patterns[:, None, None] * ramp
            arrays["frames"] = np.clip(np.repeat(base, 3, axis=2) + noise(
                (n, frames, 3, size, size)), 0, 1)
        else:
            arrays["color"] = np.clip(patterns[:, None] + noise((n, 3, size, size)), 0, 1)
            if task == "rgbd":
                arrays["depth"] = np.clip(patterns[:, None] * 0.8 + noise((n, 1, size, size)), 0, 1)
                arrays["color2d"] = np.clip(patterns[:, None] + noise((n, 3, size, size)), 0, 1)
        occluded = split.startswith("test_occ")
        if occluded:
            pct = occlusion_percent(split)
            rows = max(1, size * pct // 100)
            for key in ("color", "depth", "color2d"):
                if key in arrays:
                    arrays[key][:, :, :rows] = 0.0
            if "frames" in arrays:
                arrays["frames"][:, :, :, :rows] = 0.0
        arrays["ids"] = np.array([f"{split}-{i}" for i in range(n)])
        arrays["occluded"] = np.full(n, occluded)
        arrays["fallback"] = np.zeros(n, dtype=bool)
        write_split(task_dir / split, arrays)
    meta = {"classes": list(classes), "task": task, "synthetic": True, "size": size}
    write_json(task_dir / "meta.json", meta)
    return task_dir


def _pattern(label: int, num_classes: int, size: int) -> np.ndarray:
    """A square whose vertical band and size encode the class (flip-invariant by design)."""
    image = np.zeros((size, size), dtype=np.float64)
    band = size // max(num_classes, 1)
    top = int(label) * band
    image[top : top + max(band, 2), size // 4 : size - size // 4] = 0.7
    return image
