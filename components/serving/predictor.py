"""Raw inputs in, one row per face out: the runtime-independent half of serving.

:class:`Predictor` parses a request (DataFrame rows, arrays, paths), runs the training chain
(:mod:`components.serving.faces`), batches every face of the request into one forward pass of
a *backend* (the trained classifier in process, or onnxruntime) and returns the result
table. The MLflow pyfunc and the ``ferops predict`` CLI both call it, so they cannot drift apart.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from components.serving.decode import InputError, decode
from components.serving.eyes import check_eyes, parse_eyes
from components.serving.faces import Face, Request, clip_face, still_faces
from components.serving.settings import ServingSettings

T = TypeVar("T")
Backend = Callable[[np.ndarray], np.ndarray]  # stacked float32 batch -> probabilities
IMAGE_COLUMNS: tuple[str, ...] = ("image", "depth", "color2d", "frames")
EYE_COLUMNS: tuple[str, ...] = ("eyes", "eyes2d")  # optional given eye centres per row
CROP_COLUMN = "crop"  # optional per row: the image (each frame) already is a face crop
BASE_COLUMNS: tuple[str, ...] = (
    "input", "face", "x", "y", "w", "h", "label", "probability", "low_confidence",
    "located_by",
)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (so rows sum to 1 to machine precision), as float32."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def classifier_backend(classifier: Any) -> Backend:
    """Probabilities from a trained :class:`~components.models.Classifier`, in process."""

    def run(batch: np.ndarray) -> np.ndarray:
        proba = classifier.predict_proba(np.ascontiguousarray(batch, dtype=np.float32))
        return np.asarray(proba, dtype=np.float32)

    return run


class Predictor:
    """Scores raw inputs with one backend under the settings the model was trained with."""

    def __init__(self, settings: ServingSettings, backend: Backend) -> None:
        self.settings = settings
        self.backend = backend

    def requests(self, model_input: Any) -> list[Request]:
        """Decode a request into :class:`Request` rows (see :meth:`predict` for the forms).

        Raises:
            InputError: an unknown input type, missing column, bad image or wrong modality.
        """
        rows = to_rows(model_input)
        if not rows:
            raise InputError("request holds no rows")
        return in_parallel(self._request, list(enumerate(rows)))

    def _request(self, index: int, row: dict[str, Any]) -> Request:
        """One row decoded and checked (see :meth:`requests`)."""
        limits = self.settings.limits
        frames = row.get("frames")
        if _given(frames):
            for column in EYE_COLUMNS:
                if parse_eyes(row.get(column), f"row {index} {column}") is not None:
                    raise InputError(f"row {index} {column}: eye centres apply to still "
                                     "images, not to 'frames'")
            request = self._clip_request(index, frames)
            request.crop = parse_crop(row.get(CROP_COLUMN), index)
            return request
        if self.settings.is_video:
            raise InputError(f"row {index}: model {self.settings.spec.arch} scores video; "
                             "send a list of frames in column 'frames'")
        if not _given(row.get("image")):
            raise InputError(f"row {index}: column 'image' is missing or empty")
        request = Request(color=decode(row["image"], f"row {index} image", limits))
        if _given(row.get("depth")):
            request.depth = decode(row["depth"], f"row {index} depth", limits, depth=True)
        if _given(row.get("color2d")):
            request.color2d = decode(row["color2d"], f"row {index} color2d", limits)
        self._add_eyes(index, row, request)
        request.crop = parse_crop(row.get(CROP_COLUMN), index)
        return request

    def _add_eyes(self, index: int, row: dict[str, Any], request: Request) -> None:
        """Parse and check the row's optional ``eyes`` / ``eyes2d`` (see :mod:`..eyes`).

        Raises:
            InputError: malformed eyes, points outside their image, several ``eyes2d`` faces,
                or ``eyes2d`` without a ``color2d`` image.
        """
        field = f"row {index} eyes"
        request.eyes = parse_eyes(row.get("eyes"), field)
        if request.eyes is not None:
            check_eyes(request.eyes, request.color.shape, field, self.settings.limits.max_faces)
        field2d = f"row {index} eyes2d"
        eyes2d = parse_eyes(row.get("eyes2d"), field2d)
        if eyes2d is None:
            return
        if request.color2d is None:
            raise InputError(f"{field2d}: given without a 'color2d' image")
        if len(eyes2d) != 1:
            raise InputError(f"{field2d}: the 2-D image holds one face; got {len(eyes2d)}")
        check_eyes(eyes2d, request.color2d.shape, field2d, 1)
        request.eyes2d = eyes2d[0]

    def _clip_request(self, index: int, frames: Any) -> Request:
        if not self.settings.is_video:
            raise InputError(f"row {index}: model {self.settings.spec.arch} scores still "
                             "images; send one image in column 'image', not 'frames'")
        if isinstance(frames, str):
            try:
                frames = json.loads(frames)
            except json.JSONDecodeError as exc:
                raise InputError(f"row {index} frames: expected a list of images") from exc
        if isinstance(frames, np.ndarray) and frames.dtype != object and frames.ndim in (3, 4):
            frames = list(frames)
        if not isinstance(frames, Sequence | np.ndarray) or len(frames) == 0:
            raise InputError(f"row {index} frames: expected a non-empty list of images")
        if len(frames) > self.settings.limits.max_frames:
            raise InputError(f"row {index} frames: {len(frames)} frames, more than the "
                             f"{self.settings.limits.max_frames} limit")
        limits = self.settings.limits
        return Request(frames=[decode(f, f"row {index} frame {t}", limits)
                               for t, f in enumerate(frames)])

    def faces(self, requests: list[Request]) -> list[Face]:
        """Every face of every request, in input order then largest face first."""
        return [face for found in in_parallel(self._request_faces, list(enumerate(requests)))
                for face in found]

    def _request_faces(self, index: int, request: Request) -> list[Face]:
        if request.frames is not None:
            return clip_face(index, request.frames, self.settings, request.crop)
        return still_faces(index, request, self.settings)

    def predict(self, model_input: Any) -> pd.DataFrame:
        """One row per face: input index, face number, box, top label and probabilities.

        ``model_input`` is a DataFrame (or list of dicts / dict of lists) with column
        ``image`` (bytes, base64 text or file path), plus ``depth`` for RGB-D models,
        optional ``color2d``, or ``frames`` (a list of images) for video models; or an
        (H, W, 3) array, a list of arrays, or a path. Optional ``eyes`` (``eyes2d`` for the
        ``color2d`` image) give the eye centres ``[lx, ly, rx, ry]`` (or ``"lx,ly,rx,ry"``,
        or a list of quadruples for several faces): those faces are aligned by the given
        points (``located_by`` ``landmarks``) and no detection runs for the row. Optional
        ``crop`` (true) says the image already is a face crop: no detection, the whole image
        is the face. A row without a detected face gives no result row; a face whose top
        probability is under ``serving.min_confidence`` is flagged ``low_confidence``.

        Raises:
            InputError: see :meth:`requests`.
        """
        faces = self.faces(self.requests(model_input))
        if not faces:
            return self.table([], np.zeros((0, len(self.settings.classes)), np.float32))
        proba = self.backend(np.stack([f.sample for f in faces]))
        return self.table(faces, proba)

    def table(self, faces: list[Face], proba: np.ndarray) -> pd.DataFrame:
        """The result frame of faces and their class probabilities (columns ``p_<class>``).

        Built in one go from typed arrays: column-by-column inserts and a final cast cost
        more than a small model's forward pass.
        """
        classes = self.settings.classes
        proba = np.asarray(proba, dtype=np.float32).reshape(len(faces), len(classes))
        top = proba.argmax(axis=1)
        best = proba[np.arange(len(faces)), top].astype(np.float64)
        boxes = np.array([f.box for f in faces], dtype=np.int64).reshape(len(faces), 4)
        columns: dict[str, Any] = {
            "input": np.array([f.index for f in faces], dtype=np.int64),
            "face": np.array([f.face for f in faces], dtype=np.int64),
            "x": boxes[:, 0], "y": boxes[:, 1], "w": boxes[:, 2], "h": boxes[:, 3],
            "label": np.array([classes[i] for i in top], dtype=object),
            "probability": best,
            "low_confidence": best < self.settings.limits.min_confidence,
            "located_by": np.array([f.source for f in faces], dtype=object),
        }
        for k, name in enumerate(classes):
            columns[f"p_{name}"] = proba[:, k].astype(np.float64)
        return pd.DataFrame(columns)


def in_parallel(work: Callable[..., T], items: list[tuple[Any, ...]]) -> list[T]:
    """``[work(*item) for item in items]``, spread over the cores when there are several.

    Decoding, detection and warping are OpenCV calls that release the GIL, so threads give
    a folder's photos the machine's cores. Results keep the input order, and the first
    failing item (in order) raises, as the plain loop would.
    """
    if len(items) <= 1 or _cores() <= 1:
        return [work(*item) for item in items]
    return list(_pool().map(lambda item: work(*item), items))


_POOLS: dict[int, ThreadPoolExecutor] = {}  # by process id: a forked server worker makes its own


def _cores() -> int:
    return os.cpu_count() or 1


def _pool() -> ThreadPoolExecutor:
    """The process's worker threads, kept between requests (each keeps its own detector)."""
    pid = os.getpid()
    if pid not in _POOLS:
        _POOLS[pid] = ThreadPoolExecutor(max_workers=_cores(), thread_name_prefix="ferops-faces")
    return _POOLS[pid]


def _given(value: Any) -> bool:
    """True for a present cell (None / NaN / empty text count as absent)."""
    if value is None:
        return False
    if isinstance(value, float) and np.isnan(value):
        return False
    if isinstance(value, str | bytes) and len(value) == 0:
        return False
    return True


def parse_crop(value: Any, index: int) -> bool:
    """The optional ``crop`` cell: absent means False.

    Raises:
        InputError: a value that is not a yes/no.
    """
    if not _given(value):
        return False
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise InputError(f"row {index} crop: expected true or false, got {value!r}")


def to_rows(model_input: Any) -> list[dict[str, Any]]:
    """Normalise every accepted request form into a list of ``{column: value}`` rows.

    Raises:
        InputError: an unsupported type, or a DataFrame without any image column.
    """
    if isinstance(model_input, pd.DataFrame):
        if not any(c in model_input.columns for c in IMAGE_COLUMNS):
            raise InputError(f"request columns {list(model_input.columns)}: expected 'image' "
                             "(plus 'depth' / 'color2d') or 'frames'")
        columns = list(model_input.columns)  # to_dict("records") costs ms per small request
        return [dict(zip(columns, values, strict=True))
                for values in zip(*(model_input[c].tolist() for c in columns), strict=True)]
    if isinstance(model_input, np.ndarray):
        if model_input.dtype == object:
            return [{"image": v} for v in model_input.tolist()]
        if model_input.ndim == 4:  # a batch of same-sized images
            return [{"image": image} for image in model_input]
        return [{"image": model_input}]
    if isinstance(model_input, dict):
        if all(isinstance(v, list) for v in model_input.values()):
            return to_rows(pd.DataFrame(model_input))
        return [model_input]
    if isinstance(model_input, str | bytes | Path):
        return [{"image": model_input}]
    if isinstance(model_input, list | tuple):
        return [item if isinstance(item, dict) else {"image": item} for item in model_input]
    raise InputError(f"unsupported request type {type(model_input).__name__}: send a "
                     "DataFrame with column 'image', an image array or a list of them")
