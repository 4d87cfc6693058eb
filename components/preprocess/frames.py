"""Bringing every clip to the same number of face frames (seed 004, methods.md 5.1 / 5.3).

After frames without a face are dropped, clips differ in length; the video models need a fixed
T. ``interpolate`` linearly blends neighbouring aligned frames when a clip is shorter and
takes uniformly spaced frames when it is longer; ``keyframes`` always takes uniformly spaced
key frames, repeating frames when the clip is shorter.
"""

from __future__ import annotations

import numpy as np

from components.errors import DataError


def sample_positions(n_frames: int, length: int) -> np.ndarray:
    """``length`` evenly spaced positions over ``[0, n_frames - 1]`` (first and last kept)."""
    if length == 1:
        return np.array([(n_frames - 1) / 2.0])
    return np.linspace(0.0, n_frames - 1, length)


def resample_clip(frames: np.ndarray, length: int, method: str) -> np.ndarray:
    """Return exactly ``length`` frames from ``frames`` (T0, ...) as float32.

    Raises:
        DataError: the clip holds no frames or ``method`` is unknown.
    """
    frames = np.asarray(frames)
    count = frames.shape[0]
    if count == 0:
        raise DataError("clip has no face frames left to resample")
    positions = sample_positions(count, length)
    if method == "keyframes" or (method == "interpolate" and count >= length):
        # Round half up so positions are picked the same way on every platform.
        return frames[np.floor(positions + 0.5).astype(int)].astype(np.float32)
    if method != "interpolate":
        raise DataError(f"unknown clip sampling {method!r}; expected interpolate or keyframes")
    lower = np.floor(positions).astype(int)
    upper = np.minimum(lower + 1, count - 1)
    weight = (positions - lower).astype(np.float32).reshape((-1,) + (1,) * (frames.ndim - 1))
    low = frames[lower].astype(np.float32)
    high = frames[upper].astype(np.float32)
    return low * (1.0 - weight) + high * weight
