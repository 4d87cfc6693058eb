"""Intensity steps of the chain: piecewise contrast stretching, enhancement, normalisation.

Seed 000 stretches contrast section by section (methods.md 1.5, [DEFAULT] values): colour per
channel between two percentiles, depth in a window around the face's median distance with
near = bright. Seed 001 (2.2) sharpens with ``P = a*(I - lowpass(I)) + b*I``. Every function
works on a batch ``(N, C, H, W)`` so 48 px crops are stretched thousands at a time; a
sample's result never depends on the other samples in the batch.
"""

from __future__ import annotations

import cv2
import numpy as np

from components.data.io import match_channels

# Median depth is taken over the central part of the aligned crop, where the face is, so
# background and shoulders at the crop border do not pull the window away from the face.
DEPTH_CENTRE_FRACTION = 0.5


def stretch_color(batch: np.ndarray, low_pct: float, high_pct: float) -> np.ndarray:
    """Piecewise-linear stretch per image and channel, returning float32 in [0, 255].

    Values at or below the ``low_pct`` percentile map to 0, at or above ``high_pct`` to 255,
    linearly in between. A channel whose two percentiles coincide (flat) is left as it is,
    since no stretch is defined for it.
    """
    raw = np.asarray(batch)
    n, c = raw.shape[:2]
    low, high = channel_percentiles(raw.reshape(n, c, -1), low_pct, high_pct)
    data = raw.astype(np.float32, copy=False)
    flat = data.reshape(n, c, -1)
    span = high - low
    usable = span > 1e-6
    safe_span = np.where(usable, span, 1.0)[..., None]
    stretched = np.clip((flat - low[..., None]) / safe_span, 0.0, 1.0) * 255.0
    out = np.where(usable[..., None], stretched, flat)
    return out.reshape(data.shape).astype(np.float32, copy=False)


def channel_percentiles(flat: np.ndarray, low_pct: float, high_pct: float):
    """Two percentiles (numpy's default linear interpolation) along the last axis, float32.

    uint8 images are sorted with numpy's radix sort (``kind="stable"`` on 8-bit data), about
    five times faster than the generic partition on float; other dtypes use np.percentile.
    """
    if flat.dtype != np.uint8:
        values = np.percentile(flat.astype(np.float32), [low_pct, high_pct], axis=-1)
        return values.astype(np.float32)
    ordered = np.sort(flat, axis=-1, kind="stable")
    last = flat.shape[-1] - 1
    out = []
    for pct in (low_pct, high_pct):
        position = pct / 100.0 * last
        below = int(np.floor(position))
        above = min(below + 1, last)
        weight = position - below
        a = ordered[..., below].astype(np.float64)
        b = ordered[..., above].astype(np.float64)
        out.append((a + (b - a) * weight).astype(np.float32))
    return out[0], out[1]


def stretch_depth(batch: np.ndarray, window_mm: float) -> np.ndarray:
    """Window raw depth (mm) to ``median +- window_mm`` of the face, near = 255, holes = 0.

    ``batch`` is (N, 1, H, W) of raw millimetres with 0 for missing measurements. The median
    comes from valid pixels in the crop centre (all valid pixels when the centre has none).
    Returns float32 in [0, 255]; a map without any valid pixel comes back all zero.
    """
    data = np.asarray(batch, dtype=np.float32)
    out = np.zeros_like(data)
    height, width = data.shape[-2:]
    margin_y = int(round(height * (1 - DEPTH_CENTRE_FRACTION) / 2))
    margin_x = int(round(width * (1 - DEPTH_CENTRE_FRACTION) / 2))
    for i in range(data.shape[0]):
        depth = data[i, 0]
        valid = depth > 0
        if not valid.any():
            continue
        centre = depth[margin_y : height - margin_y, margin_x : width - margin_x]
        centre_valid = centre[centre > 0]
        median = float(np.median(centre_valid if centre_valid.size else depth[valid]))
        scaled = np.clip((median + window_mm - depth) / (2 * window_mm), 0.0, 1.0) * 255.0
        out[i, 0] = np.where(valid, scaled, 0.0)
    return out


def enhance(
    batch: np.ndarray, *, sigma: float, a: float, b: float, reference_size: int = 48
) -> np.ndarray:
    """Seed 001 unsharp masking on [0, 255] images: ``clip(a*(I - G*I) + b*I, 0, 255)``.

    ``G`` is a Gaussian of ``sigma`` pixels at a 48 px face, scaled with the image side, with a
    kernel of radius ``ceil(2 * sigma)`` and mirrored borders. Returns float32 in [0, 255].
    """
    data = np.asarray(batch, dtype=np.float32)
    scaled_sigma = sigma * data.shape[-1] / reference_size
    ksize = 2 * int(np.ceil(2 * scaled_sigma)) + 1
    out = np.empty_like(data)
    for i in range(data.shape[0]):
        for ch in range(data.shape[1]):
            low = cv2.GaussianBlur(
                data[i, ch], (ksize, ksize), scaled_sigma, borderType=cv2.BORDER_REFLECT_101
            )
            out[i, ch] = a * (data[i, ch] - low) + b * data[i, ch]
    return np.clip(out, 0.0, 255.0)


def normalise(batch: np.ndarray) -> np.ndarray:
    """Divide [0, 255] values by 255 (seed 000's fifth step) and store as float16 in [0, 1]."""
    return np.clip(np.asarray(batch, dtype=np.float32) / 255.0, 0.0, 1.0).astype(np.float16)


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """(H, W[, 3]) uint8 -> (C, H, W) with the task's channel count (grey <-> RGB by
    :func:`~components.data.io.match_channels`)."""
    matched = match_channels(image, channels)
    if matched.ndim == 2:
        return matched[None]
    return np.ascontiguousarray(matched.transpose(2, 0, 1))
