"""Turning what a caller sends into checked images: bytes, base64 text, file paths, arrays.

A served model faces untrusted input, so every image is sized from its header before it is
decoded (an enormous PNG is refused without allocating its pixels) and every rejection is an
:class:`InputError` naming the field and the problem; the pyfunc turns those into HTTP 400.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from components.data.io import exif_orientation, upright
from components.data.io import header_size as read_header_size
from components.errors import DataError
from components.serving.settings import ServingConfig

# MLflow sets this in the scoring server process; file paths are then refused by default.
SERVING_ENV = "_MLFLOW_IS_IN_SERVING_ENVIRONMENT"
MAX_PATH_CHARS = 1024  # longer text is never taken for a file name


class InputError(DataError):
    """A request's image or field is unusable (not an image, too large, wrong shape, ...)."""


def in_scoring_server() -> bool:
    """True inside ``mlflow models serve`` (MLflow marks its serving process)."""
    return os.environ.get(SERVING_ENV, "").lower() == "true"


def image_bytes(value: Any, field: str, limits: ServingConfig) -> bytes:
    """The encoded bytes of one image reference: raw bytes, base64 text or a file path.

    Text is taken as a path when such a file exists (and paths are allowed), else as base64.

    Raises:
        InputError: empty value, unreadable path, or text that is neither path nor base64.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
    elif isinstance(value, str | Path):
        data = _text_bytes(str(value), field, limits)
    else:
        raise InputError(f"{field}: expected image bytes, base64 text or a file path, "
                         f"got {type(value).__name__}")
    if not data:
        raise InputError(f"{field}: empty image")
    return data


def _text_bytes(text: str, field: str, limits: ServingConfig) -> bytes:
    stripped = text.strip()
    if stripped.startswith("data:") and "," in stripped:  # data URLs from browsers
        stripped = stripped.split(",", 1)[1]
    if in_scoring_server() and not limits.allow_paths_when_served:
        return _served_text_bytes(stripped, field)
    if 0 < len(stripped) <= MAX_PATH_CHARS and _looks_like_path(stripped):
        path = Path(stripped).expanduser()
        if _is_file(path):
            return path.read_bytes()
    try:
        return base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError) as exc:
        if _looks_like_path(stripped) and len(stripped) <= MAX_PATH_CHARS:
            raise InputError(f"{field}: {stripped}: file not found") from exc
        raise InputError(f"{field}: not an image (text is neither base64 nor a file path)"
                         ) from exc


def _served_text_bytes(text: str, field: str) -> bytes:
    """Base64 only, deciding without touching the server's filesystem: a path to an
    existing file and a path to a missing one get the same answer, so a client learns
    nothing about which files the server holds."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"{field}: not base64 image data (the served model takes images as "
                         "base64; file paths are not accepted)") from exc


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False for text the OS refuses as a path: base64 holds '/' and a
    component longer than the file-name limit raises ENAMETOOLONG instead of answering."""
    try:
        return path.is_file()
    except OSError:
        return False


def _looks_like_path(text: str) -> bool:
    """Paths have a suffix or a separator; base64 of an image is long and has neither '.'."""
    return "." in text or os.sep in text or text.startswith("~")


def header_size(data: bytes, field: str) -> tuple[int, int] | None:
    """``(width, height)`` read from the file header without decoding pixels; None if unknown
    (the one header reader, :func:`components.data.io.header_size`, with the field named).

    Raises:
        InputError: the header announces a decompression bomb.
    """
    try:
        return read_header_size(data)
    except DataError as exc:
        raise InputError(f"{field}: image is enormous ({exc})") from exc


def check_size(width: int, height: int, field: str, limits: ServingConfig) -> None:
    """Refuse images beyond the side/area limits or too small to hold a face.

    Raises:
        InputError: naming the size and the limit it breaks.
    """
    if max(width, height) > limits.max_side:
        raise InputError(f"{field}: image is {width}x{height}, larger than the "
                         f"{limits.max_side} px side limit")
    if width * height > limits.max_megapixels * 1e6:
        raise InputError(f"{field}: image is {width * height / 1e6:.1f} MP, more than the "
                         f"{limits.max_megapixels:g} MP limit")
    if min(width, height) < limits.min_side:
        raise InputError(f"{field}: image is {width}x{height}, smaller than the "
                         f"{limits.min_side} px minimum side")


def decode(value: Any, field: str, limits: ServingConfig, *, depth: bool = False) -> np.ndarray:
    """Decode one image value into the layout the preprocessing chain reads.

    Returns RGB uint8 (H, W, 3) or grey (H, W) for colour fields, and the raw single-channel
    (H, W) depth in millimetres when ``depth`` is true. Arrays are checked, not re-encoded.

    Raises:
        InputError: not an image, enormous, or the wrong shape / dtype for the field.
    """
    if isinstance(value, np.ndarray):
        image = value
    else:
        data = image_bytes(value, field, limits)
        size = header_size(data, field)
        if size is not None:
            check_size(*size, field, limits)
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise InputError(f"{field}: not an image (cannot decode {len(data)} bytes)")
        if not depth:  # a phone photo stored sideways is turned as its EXIF tag says
            image = upright(_from_bgr(image, field), exif_orientation(data))
    return _checked(image, field, limits, depth=depth)


def _from_bgr(image: np.ndarray, field: str) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[..., 0]
    return image


def _checked(image: np.ndarray, field: str, limits: ServingConfig, *, depth: bool) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if depth:
        if image.ndim != 2:
            raise InputError(f"{field}: depth map must be single-channel (H, W), got shape "
                             f"{tuple(image.shape)}")
        if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype,
                                                                          np.floating)):
            raise InputError(f"{field}: depth dtype {image.dtype} is not numeric")
    else:
        if image.ndim == 3 and image.shape[2] == 4:
            image = image[..., :3]
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise InputError(f"{field}: expected an (H, W) or (H, W, 3) image, got shape "
                             f"{tuple(image.shape)}")
        image = _as_uint8(image, field)
    check_size(int(image.shape[1]), int(image.shape[0]), field, limits)
    return np.ascontiguousarray(image)


def _as_uint8(image: np.ndarray, field: str) -> np.ndarray:
    """uint8 as is, uint16 scaled like the readers do, floats in [0, 1] scaled to 255."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image / 257).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all() or image.min() < 0 or image.max() > 1:
            raise InputError(f"{field}: float images must hold finite values in [0, 1]")
        return np.round(image * 255).astype(np.uint8)
    raise InputError(f"{field}: unsupported image dtype {image.dtype}")


def encode_png(image: np.ndarray) -> bytes:
    """Lossless PNG bytes of an RGB/grey uint8 or uint16 depth image (for requests)."""
    out = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, encoded = cv2.imencode(".png", out)
    if not ok:
        raise DataError("could not encode image as PNG")
    return encoded.tobytes()


def to_base64(data: bytes) -> str:
    """Base64 text of encoded image bytes, as JSON requests carry them."""
    return base64.b64encode(data).decode("ascii")
