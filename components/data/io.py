"""Reading image references: files of any common format, ``.npy#index`` rows, clips.

One place decodes images so every stage agrees on dtype and channel order: colour comes back
as RGB uint8 (H, W, 3), grey as (H, W), depth as uint16 or float32 (H, W) untouched.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from components.errors import DataError

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
)
VIDEO_SUFFIXES: frozenset[str] = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg"})
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_EXIF_CHUNK = b"eXIf"  # a PNG's EXIF chunk (it may follow the pixel data)


def is_image_file(path: Path) -> bool:
    """True for files whose suffix is a supported image format (case-insensitive)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


STORE_MARK = ".npy#"  # ``<store>.npy#<row>``: one row of an array store (csv sources)


def is_store_ref(ref: str) -> bool:
    """Whether ``ref`` names a row of an array store rather than a file."""
    return STORE_MARK in str(ref)


def parse_store_ref(ref: str) -> tuple[str, int]:
    """``"<store>.npy#<row>"`` -> ``("<store>.npy", row)``; a row that is not a
    non-negative integer comes back as -1 (the caller reports it).

    Raises:
        DataError: ``ref`` is not a store reference.
    """
    if not is_store_ref(ref):
        raise DataError(f"{ref}: not an array-store reference (<store>.npy#<row>)")
    store, _, row = str(ref).rpartition("#")
    return store, int(row) if row.isdigit() else -1


@lru_cache(maxsize=8)
def open_store(path: str) -> np.ndarray:
    """The array store at ``path``, memory-mapped (cached: stores are opened once).

    Raises:
        DataError: the file is missing or not a numpy array.
    """
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot open array store ({exc})") from exc


# ITU-R BT.601 luma: the weights OpenCV's RGB2GRAY applies to uint8 images, and to_grey to
# float arrays, so a face turned grey before or after preprocessing gets the same intensities.
LUMA: tuple[float, float, float] = (0.299, 0.587, 0.114)


def match_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """An (H, W) grey or (H, W, 3) RGB uint8 image with ``channels`` channels: grey for 1
    (2-D, :data:`LUMA` weights), RGB for 3 (the grey plane repeated). The one grey <-> RGB
    rule of the project for images; :func:`to_grey` is the same rule for float arrays."""
    if channels == 1:
        return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return image if image.ndim == 3 else np.repeat(image[..., None], channels, axis=2)


def to_grey(x: np.ndarray, channel_axis: int) -> np.ndarray:
    """Float RGB -> one :data:`LUMA` channel along ``channel_axis`` (what
    :func:`match_channels` does to uint8 images); 1-channel input is returned unchanged.

    Raises:
        DataError: neither 1 nor 3 channels.
    """
    if x.shape[channel_axis] == 1:
        return x
    if x.shape[channel_axis] != 3:
        raise DataError(f"cannot convert {x.shape[channel_axis]} channels to grey (expected 3)")
    weights = np.asarray(LUMA, dtype=np.float32).reshape(
        [3 if i == channel_axis else 1 for i in range(x.ndim)]
    )
    return (x * weights).sum(axis=channel_axis, keepdims=True, dtype=np.float32)


# Memory guard of every decode: an image whose header promises more pixels than this is
# refused before decoding (a 431 KB PNG can say 20000x20000 and need gigabytes). The
# configurable policy is validate.max_image_side, which the validate stage passes in.
MAX_DECODE_PIXELS = 64_000_000


def header_size(data: np.ndarray | bytes) -> tuple[int, int] | None:
    """``(width, height)`` from an encoded image's header, without decoding its pixels;
    None when the header is not one Pillow reads (OpenCV may still decode the file).

    Raises:
        DataError: the header announces a decompression bomb.
    """
    import io
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():  # sizes are judged here, not by Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(bytes(data))) as img:
                return int(img.size[0]), int(img.size[1])
    except Image.DecompressionBombError as exc:
        raise DataError(f"image header announces a decompression bomb ({exc})") from exc
    except Exception:  # noqa: BLE001 - Pillow does not know every format OpenCV reads
        return None


def check_header(data: np.ndarray | bytes, path: Path, max_side: int | None = None) -> None:
    """Refuse an image whose header is over ``max_side`` per side or over
    :data:`MAX_DECODE_PIXELS`, before any pixel is decoded.

    Raises:
        DataError: naming the size and the limit.
    """
    try:
        size = header_size(data)
    except DataError as exc:
        raise DataError(f"{path}: {exc}; not decoded") from exc
    if size is None:
        return
    width, height = size
    if max_side is not None and max(width, height) > max_side:
        raise DataError(f"{path}: image is {width}x{height}, over the {max_side} px side limit "
                        "(validate.max_image_side); not decoded")
    if width * height > MAX_DECODE_PIXELS:
        raise DataError(f"{path}: image is {width}x{height} ({width * height / 1e6:.0f} MP), "
                        f"over the {MAX_DECODE_PIXELS / 1e6:.0f} MP decode limit; not decoded")


def read_image(ref: str | Path, *, depth: bool = False, max_side: int | None = None) -> np.ndarray:
    """Decode one image reference.

    Returns RGB uint8 (H, W, 3) for colour files, (H, W) for grey files and array rows, and the
    raw (H, W) uint16/float array when ``depth`` is true. The header is read first: a file
    over ``max_side`` per side or over :data:`MAX_DECODE_PIXELS` is never decoded.

    Raises:
        DataError: the file is missing, empty, too large, truncated or not an image.
    """
    ref = str(ref)
    if is_store_ref(ref):
        store, index = parse_store_ref(ref)
        array = open_store(store)
        if not 0 <= index < len(array):
            raise DataError(f"{ref}: row index outside the array store of {len(array)} rows")
        return np.asarray(array[index])
    path = Path(ref)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise DataError(f"{path}: empty file")
    check_header(data, path, max_side)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        image = _decode_with_pillow(path)
    if image is None:
        raise DataError(f"{path}: not a decodable image (corrupt, truncated or wrong format)")
    if depth:
        if image.ndim == 3:
            raise DataError(f"{path}: depth map must be single-channel, got {image.shape[2]}")
        return image
    return upright(_to_rgb_or_grey(image, path), exif_orientation(data))


def exif_orientation(data: np.ndarray | bytes) -> int:
    """The EXIF orientation tag (1-8) of an encoded image; 1 (as stored) when absent.

    Cameras store photos sideways and record how to turn them; the decoder used here
    (OpenCV, all channels) ignores the tag, so :func:`upright` applies it.
    """
    import io

    from PIL import Image

    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    if raw.startswith(PNG_SIGNATURE) and PNG_EXIF_CHUNK not in raw:
        return 1  # Pillow would decode every pixel looking for an eXIf chunk after the data
    try:
        with Image.open(io.BytesIO(raw)) as img:
            value = img.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - no readable EXIF: the image is as stored
        return 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def upright(image: np.ndarray, orientation: int) -> np.ndarray:
    """``image`` turned as its EXIF ``orientation`` says (Pillow's exif_transpose rules)."""
    turns = {
        2: lambda a: a[:, ::-1],                            # mirrored left-right
        3: lambda a: a[::-1, ::-1],                         # 180 degrees
        4: lambda a: a[::-1],                               # mirrored top-bottom
        5: lambda a: np.swapaxes(a, 0, 1),                  # transposed
        6: lambda a: np.rot90(a, -1),                       # 90 degrees clockwise
        7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1),      # transversed
        8: lambda a: np.rot90(a, 1),                        # 90 degrees counter-clockwise
    }
    turn = turns.get(orientation)
    return image if turn is None else np.ascontiguousarray(turn(image))


def _decode_with_pillow(path: Path) -> np.ndarray | None:
    """Fallback for formats OpenCV rejects (some palette TIFFs); None when it also fails."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow ships with matplotlib
        return None
    try:
        with Image.open(path) as img:
            img.load()
            converted = img.convert("RGB") if img.mode not in ("L", "I;16", "I") else img
            array = np.asarray(converted)
    except Exception:  # noqa: BLE001 - any decoder failure means "not an image"
        return None
    return array[..., ::-1].copy() if array.ndim == 3 else array


def _to_rgb_or_grey(image: np.ndarray, path: Path) -> np.ndarray:
    if image.dtype != np.uint8:
        if image.dtype == np.uint16:
            image = (image / 257).astype(np.uint8)
        else:
            raise DataError(f"{path}: unsupported colour image dtype {image.dtype}")
    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    if image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    raise DataError(f"{path}: unsupported channel count {image.shape[2]}")


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Encode an RGB/grey uint8 or a uint16 depth image losslessly by the file's suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, encoded = cv2.imencode(path.suffix, out)
    if not ok:
        raise DataError(f"{path}: could not encode image")
    encoded.tofile(path)
    return path


def list_frame_files(folder: Path) -> list[Path]:
    """The image files of a frame folder, in natural (numeric-aware) order."""
    return sorted((p for p in folder.iterdir() if is_image_file(p)), key=_natural_key)


def _natural_key(path: Path) -> tuple:
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))


def read_frames(ref: str | Path) -> list[np.ndarray]:
    """Decode a clip: a folder of frame images or a video file, as a list of RGB frames.

    Raises:
        DataError: the folder has no frames or the video cannot be decoded.
    """
    path = Path(ref)
    if path.is_dir():
        files = list_frame_files(path)
        if not files:
            raise DataError(f"{path}: clip folder holds no image frames")
        return [read_image(f) for f in files]
    if not path.exists():
        raise DataError(f"{path}: clip not found")
    capture = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise DataError(f"{path}: unreadable video (no frame could be decoded)")
    return frames
