"""Eye centres given with a request: parsed, checked, turned into located faces.

Training aligned a sample by its known eye landmarks whenever the source had them (the
synthetic RGB-D photos among others, which the Haar cascade does not find). A caller who knows
the eyes sends them in the optional ``eyes`` column (``eyes2d`` for the 2-D camera image), and
the face is then located exactly as the preprocess stage locates a sample with landmarks:
``align.locate`` with the points, source ``landmarks``, no detection.

Accepted forms of one cell: ``[lx, ly, rx, ry]`` (list, tuple or array of four numbers), the
text ``"lx,ly,rx,ry"`` (JSON / CSV callers), several faces as a list of quadruples, the text
``"lx,ly,rx,ry;lx,ly,rx,ry"`` or JSON ``"[[...], [...]]"``. Coordinates are pixel centres of
the colour image (pixel (0, 0) covers [-0.5, 0.5]); ``l`` is the eye at the smaller x.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from components.preprocess import align
from components.serving.decode import InputError

Quad = tuple[float, float, float, float]
MIN_EYE_DISTANCE = 1.0  # pixels; closer eyes give no usable scale for the alignment warp


def parse_eyes(value: Any, field: str) -> list[Quad] | None:
    """The eye quadruples of one request cell (see module doc for the forms).

    Returns None for an absent cell (None, NaN, empty text or empty list).

    Raises:
        InputError: not four numbers per face, a non-number, or an unreadable text.
    """
    if value is None or (not _is_sequence(value) and not isinstance(value, str | bytes)
                         and bool(pd.isna(value))):
        return None
    if isinstance(value, str):
        value = _parse_text(value, field)
        if value is None:
            return None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise InputError(f"{field}: expected [lx, ly, rx, ry] or 'lx,ly,rx,ry', "
                         f"got {type(value).__name__}")
    if len(value) == 0:
        return None
    nested = all(_is_sequence(v) for v in value)
    if not nested and any(_is_sequence(v) for v in value):
        raise InputError(f"{field}: mixes numbers and lists; send [lx, ly, rx, ry] or a "
                         "list of such quadruples")
    entries = list(value) if nested else [value]
    return [_quad(entry, f"{field}[{n}]" if nested else field)
            for n, entry in enumerate(entries)]


def _parse_text(text: str, field: str) -> Any:
    """``"lx,ly,rx,ry[;...]"`` or JSON text -> nested lists; None for blank text."""
    stripped = text.strip()
    if not stripped:
        return None
    if stripped.startswith("["):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise InputError(f"{field}: not valid JSON ({exc.msg}): {stripped[:60]!r}") from exc
    faces = [part for part in stripped.split(";") if part.strip()]
    split = [[item.strip() for item in face.split(",")] for face in faces]
    return split if len(split) > 1 else split[0]


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence | np.ndarray) and not isinstance(value, str | bytes)


def _quad(entry: Any, field: str) -> Quad:
    values = list(entry.tolist() if isinstance(entry, np.ndarray) else entry)
    if len(values) != 4:
        raise InputError(f"{field}: expected 4 numbers [lx, ly, rx, ry], got {len(values)}")
    out = []
    for value in values:
        if isinstance(value, bool):
            raise InputError(f"{field}: {value!r} is not a number")
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{field}: {value!r} is not a number") from exc
        if not math.isfinite(number):
            raise InputError(f"{field}: {value!r} is not a finite number")
        out.append(number)
    return (out[0], out[1], out[2], out[3])


def check_eyes(quads: list[Quad], shape: tuple[int, ...], field: str, limit: int) -> None:
    """Refuse eyes outside the image, eyes on one spot, or more faces than ``limit``.

    Raises:
        InputError: naming the face and the problem.
    """
    if len(quads) > limit:
        raise InputError(f"{field}: {len(quads)} faces, more than the {limit} faces limit")
    height, width = shape[:2]
    for n, (lx, ly, rx, ry) in enumerate(quads):
        name = f"{field}[{n}]" if len(quads) > 1 else field
        for x, y in ((lx, ly), (rx, ry)):
            if not (-0.5 <= x <= width - 0.5 and -0.5 <= y <= height - 0.5):
                raise InputError(f"{name}: point ({x:g}, {y:g}) lies outside the "
                                 f"{width}x{height} image")
        if math.hypot(rx - lx, ry - ly) < MIN_EYE_DISTANCE:
            raise InputError(f"{name}: the two eyes are less than {MIN_EYE_DISTANCE:g} px "
                             "apart")


def located_by_eyes(image: np.ndarray, quad: Quad, canonical: align.Points,
                    size: int) -> align.Located:
    """The stage's landmark location (``align.locate`` with the points) plus a face box.

    The stage keeps no box for landmarks; the box here is the part of the image the aligned
    crop shows (the output square mapped back, bounded and clipped to the image), so the
    result table's box frames what the model saw.
    """
    located = align.locate(image, quad, is_crop=True, canonical=canonical)
    matrix = align.matrix_for(located, image.shape[:2], canonical, size)
    return dataclasses.replace(located, box=crop_box(matrix, image.shape[:2], size))


def crop_box(matrix: np.ndarray, shape: tuple[int, int], size: int) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` in the image of the ``size`` square the warp ``matrix`` produces."""
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    edge = size - 0.5  # output pixel edges in pixel-centre coordinates: -0.5 .. size - 0.5
    corners = np.array([[-0.5, -0.5, 1], [edge, -0.5, 1], [-0.5, edge, 1], [edge, edge, 1]])
    points = corners @ inverse.T
    height, width = shape
    x0 = int(np.clip(np.floor(points[:, 0].min() + 0.5), 0, width - 1))
    y0 = int(np.clip(np.floor(points[:, 1].min() + 0.5), 0, height - 1))
    x1 = int(np.clip(np.ceil(points[:, 0].max() + 0.5), x0 + 1, width))
    y1 = int(np.clip(np.ceil(points[:, 1].max() + 0.5), y0 + 1, height))
    return (x0, y0, x1 - x0, y1 - y0)
