"""Where the face is: eye positions, the face box derived from them, and camera-to-camera maps.

Occluders are sized as a fraction of the face, not of the image, so a 40 % occluder hides 40 %
of the face whether the photo is a tight crop or a wide RGB-D frame. Without landmarks the
image is taken to be an aligned face crop with eyes at canonical positions.
"""

from __future__ import annotations

import json
import math
from typing import NamedTuple

import numpy as np
import pandas as pd

from components.errors import DataError

# Eye centres of an aligned face crop, as fractions of (width, height).
CANONICAL_EYES: tuple[float, float, float, float] = (0.3, 0.38, 0.7, 0.38)
# Face box from the eye distance d: width 2.2 d centred between the eyes, top 0.9 d above them.
BOX_WIDTH: float = 2.2
BOX_ABOVE: float = 0.9
BOX_HEIGHT: float = 2.6
# Below this many pixels a side, a face box is meaningless: use the whole image.
MIN_BOX_SIDE: int = 4

Eyes = tuple[float, float, float, float]


class Box(NamedTuple):
    """Integer pixel box, ``x1``/``y1`` exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def area(self) -> int:
        return self.width * self.height


def canonical_eyes(width: int, height: int) -> Eyes:
    """Eye centres an aligned crop of this size is assumed to have."""
    lx, ly, rx, ry = CANONICAL_EYES
    return (lx * width, ly * height, rx * width, ry * height)


def parse_landmarks(text: object, *, sample_id: str) -> dict[str, list[Eyes]]:
    """Decode the manifest ``landmarks`` JSON into ``{modality: [eyes per frame]}``.

    Returns an empty dict for a null cell.

    Raises:
        DataError: the cell is not JSON of ``[lx, ly, rx, ry]`` lists.
    """
    if text is None or (not isinstance(text, str) and pd.isna(text)):
        return {}
    try:
        data = json.loads(str(text))
        return {
            str(key): [tuple(float(v) for v in entry) for entry in entries]  # type: ignore[misc]
            for key, entries in data.items()
            if entries is not None
        }
    except (ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"sample {sample_id!r}: landmarks are not valid JSON eyes ({exc})") from exc


def eyes_for(
    landmarks: dict[str, list[Eyes]], modality: str, index: int, n_frames: int, shape: tuple
) -> Eyes:
    """Eyes of one frame of one modality; canonical eyes when the source gave none.

    One entry serves every frame of a still; a clip needs one entry per frame.

    Raises:
        DataError: a clip whose landmark count matches neither 1 nor its frame count.
    """
    entries = landmarks.get(modality) or []
    if not entries:
        return canonical_eyes(shape[1], shape[0])
    if len(entries) == 1:
        eyes = entries[0]
    elif len(entries) == n_frames:
        eyes = entries[index]
    else:
        raise DataError(
            f"landmarks[{modality!r}] has {len(entries)} entries for {n_frames} frames"
        )
    if len(eyes) != 4 or not all(math.isfinite(v) for v in eyes):
        return canonical_eyes(shape[1], shape[0])
    return eyes  # type: ignore[return-value]


def face_box(eyes: Eyes, shape: tuple) -> Box:
    """The face box implied by the eyes, clipped to the image; the whole image when degenerate."""
    height, width = int(shape[0]), int(shape[1])
    lx, ly, rx, ry = eyes
    dist = math.hypot(rx - lx, ry - ly)
    cx, cy = (lx + rx) / 2, (ly + ry) / 2
    x0 = max(0, int(round(cx - BOX_WIDTH / 2 * dist)))
    x1 = min(width, int(round(cx + BOX_WIDTH / 2 * dist)))
    y0 = max(0, int(round(cy - BOX_ABOVE * dist)))
    y1 = min(height, int(round(cy - BOX_ABOVE * dist + BOX_HEIGHT * dist)))
    if x1 - x0 < MIN_BOX_SIDE or y1 - y0 < MIN_BOX_SIDE:
        return Box(0, 0, width, height)
    return Box(x0, y0, x1, y1)


def similarity(src: Eyes, dst: Eyes) -> np.ndarray:
    """The 2x3 similarity (rotation, uniform scale, shift) taking ``src`` eyes onto ``dst`` eyes.

    Two point pairs fix a similarity exactly, which is why eye landmarks suffice to carry an
    occluder from one frame or camera to another. Falls back to a pure shift of the eye midpoint
    when the source eyes coincide.
    """
    s_left, s_right = complex(src[0], src[1]), complex(src[2], src[3])
    d_left, d_right = complex(dst[0], dst[1]), complex(dst[2], dst[3])
    if abs(s_right - s_left) < 1e-6:
        scale = complex(1.0, 0.0)
    else:
        scale = (d_right - d_left) / (s_right - s_left)
    shift = (d_left + d_right) / 2 - scale * (s_left + s_right) / 2
    return np.array(
        [[scale.real, -scale.imag, shift.real], [scale.imag, scale.real, shift.imag]],
        dtype=np.float64,
    )


def covered_fraction(mask: np.ndarray, box: Box) -> float:
    """Fraction of the face box that a boolean occluder mask covers."""
    if box.area == 0:
        return 0.0
    return float(mask[box.y0 : box.y1, box.x0 : box.x1].sum()) / box.area
