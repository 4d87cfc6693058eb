"""Synthetic faces with known geometry, drawn for the preprocessing tests."""

from __future__ import annotations

import cv2
import numpy as np


def rotated(centre: tuple[float, float], offset: tuple[float, float], degrees: float):
    """``centre + R(degrees) @ offset`` as floats (image coordinates, y down)."""
    a = np.deg2rad(degrees)
    dx, dy = offset
    return (centre[0] + np.cos(a) * dx - np.sin(a) * dy,
            centre[1] + np.sin(a) * dx + np.cos(a) * dy)


def blob_face(height: int, width: int, left, right, *, radius: float = 4.0) -> np.ndarray:
    """A bright face ellipse on grey with two dark Gaussian eye blobs centred at ``left`` and
    ``right`` (sub-pixel, pixel-centre coordinates). Returns RGB uint8.
    """
    image = np.full((height, width), 160.0)
    mid = ((left[0] + right[0]) / 2, (left[1] + right[1]) / 2)
    span = np.hypot(right[0] - left[0], right[1] - left[1])
    angle = np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0]))
    canvas = np.zeros((height, width), np.uint8)
    cv2.ellipse(canvas, (round(mid[0]), round(mid[1] + 0.3 * span)),
                (round(span * 0.95), round(span * 1.25)), angle, 0, 360, 1, -1)
    image[canvas > 0] = 210.0
    yy, xx = np.mgrid[0:height, 0:width]
    for cx, cy in (left, right):
        image -= 180.0 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius**2))
    grey = np.clip(image, 0, 255).astype(np.uint8)
    return np.stack([grey] * 3, axis=-1)


def marker_depth(height: int, width: int, points, *, base: int = 800, near: int = 60,
                 radius: float = 4.0, hole=None) -> np.ndarray:
    """A uint16 depth map (mm): a flat surface at ``base`` with round bumps ``near`` mm closer at
    ``points``; ``hole`` = (x0, y0, x1, y1) is set to 0 (no measurement).
    """
    depth = np.full((height, width), float(base))
    yy, xx = np.mgrid[0:height, 0:width]
    for cx, cy in points:
        depth -= near * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius**2))
    out = np.round(depth).astype(np.uint16)
    if hole is not None:
        x0, y0, x1, y1 = hole
        out[y0:y1, x0:x1] = 0
    return out


def drawn_photo(height: int = 480, width: int = 640, face_width: int = 180, seed: int = 0):
    """A cartoon frontal face pasted into a noisy background frame, which OpenCV's frontal-face
    Haar cascade detects (skin ellipse, brows, eyes, nose, mouth). Returns RGB uint8 and the
    face centre.
    """
    rng = np.random.default_rng(seed)
    image = (np.full((height, width, 3), (90, 110, 140)) + rng.integers(0, 20, (height, width, 3)))
    image = image.astype(np.uint8)
    cx, cy = width // 2, height // 2 + 10
    fh = int(face_width * 1.3)
    cv2.ellipse(image, (cx, cy), (face_width // 2, fh // 2), 0, 0, 360, (200, 170, 150), -1)
    ed, ey = face_width * 0.2, -fh * 0.12
    for sx in (-1, 1):
        x = int(cx + sx * ed)
        brow = (x, int(cy + ey - face_width * 0.1))
        cv2.ellipse(image, brow, (int(face_width * 0.1), int(face_width * 0.025)), 0, 0, 360,
                    (60, 40, 30), -1)
        cv2.ellipse(image, (x, int(cy + ey)), (int(face_width * 0.08), int(face_width * 0.04)),
                    0, 0, 360, (250, 250, 250), -1)
        cv2.circle(image, (x, int(cy + ey)), int(face_width * 0.03), (30, 20, 20), -1)
    cv2.ellipse(image, (cx, int(cy + fh * 0.08)), (int(face_width * 0.04), int(face_width * 0.1)),
                0, 0, 360, (170, 140, 120), -1)
    cv2.ellipse(image, (cx, int(cy + fh * 0.27)), (int(face_width * 0.15),
                int(face_width * 0.04)), 0, 0, 360, (120, 50, 60), -1)
    return cv2.GaussianBlur(image, (5, 5), 1.5), (cx, cy)


def dark_centroids(image: np.ndarray, threshold: float) -> list[tuple[float, float]]:
    """Darkness-weighted centroids of the dark blobs of a 2-D [0, 1] image, left to right."""
    dark = (image < threshold).astype(np.uint8)
    count, labels = cv2.connectedComponents(dark)
    weight = np.clip(threshold - image, 0, None)
    centres = []
    for label in range(1, count):
        mask = labels == label
        if mask.sum() < 4:
            continue
        yy, xx = np.nonzero(mask)
        w = weight[yy, xx]
        centres.append((float((xx * w).sum() / w.sum()), float((yy * w).sum() / w.sum())))
    return sorted(centres)
