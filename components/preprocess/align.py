"""Face detection, eye location and the one similarity warp that aligns a face.

Seed 000 (methods.md 1.4-1.5) rotates the face so the eyes are level, moves them to set
positions and scales to the network input. Those three steps compose into one similarity
matrix, applied with a single ``cv2.warpAffine`` so an image is resampled once. The depth
map and the 3-D colour image come from the same registered camera, so depth reuses the colour
image's matrix (nearest-neighbour, so holes never blend into valid depth).

Coordinates are pixel centres (pixel (0, 0) covers [-0.5, 0.5]); a relative position ``r``
on an ``n`` pixel side is the pixel coordinate ``r * n - 0.5``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

from components.data.io import match_channels

# The detector: an OpenCV Haar cascade run on a copy whose longer side is at most
# DETECT_MAX_SIDE, the window growing by DETECT_SCALE_STEP per level, a face kept when
# DETECT_MIN_NEIGHBORS overlapping windows agree. These set its cost and its recall, measured
# on real faces in cluttered scenes by benchmarks/face_detection.py (results committed). No
# histogram equalisation: it lifts background noise into face-like windows and triples the cost.
DETECT_CASCADE = "haarcascade_frontalface_alt2.xml"
DETECT_MAX_SIDE = 240
DETECT_SCALE_STEP = 1.1
DETECT_MIN_NEIGHBORS = 3
FACE_MIN_FRACTION = 0.12  # smallest face side, as a fraction of the shorter image side
EYE_SEARCH_WIDTH = 96  # the upper face half is resized to this width for the eye cascade
# When the upright search finds no face, find_faces searches again on copies of the photo
# with a replicated border (RETRY_PAD of the shorter side: a face that fills the frame gets
# the margin the cascade's window needs) and turned by each of RETRY_ANGLES (degrees; the
# frontal cascade misses heads rolled much past 10 degrees). The first search that finds a
# face wins. Measured by benchmarks/serving_photos.py (rendered faces, normal light) and
# benchmarks/face_detection.py (real faces in scenes, false boxes on empty ones).
RETRY_PAD = 0.25
RETRY_ANGLES = (0.0, 10.0, -10.0)
# A small photo (shorter side below SMALL_PHOTO_SIDE) in which none of those searches finds a
# face is searched again, the same way, on a copy enlarged SMALL_PHOTO_ZOOM times: the
# cascade's coarse 20-pixel windows miss many faces of a 96-pixel photo that they find at
# twice the size (benchmarks/serving_photos.py, the demo's rendered photos).
SMALL_PHOTO_SIDE = 128
SMALL_PHOTO_ZOOM = 2.0

Points = tuple[tuple[float, float], tuple[float, float]]


@dataclass(frozen=True)
class Located:
    """Where a face was found: the eye points and how they were obtained.

    ``source`` is ``landmarks``, ``haar`` (eye cascade), ``proportional`` (canonical positions
    in the face box) or ``center_crop`` (no face: centred square crop, flagged as fallback).
    """

    eyes: Points | None
    source: str
    box: tuple[int, int, int, int] | None = None

    @property
    def fallback(self) -> bool:
        """True when no face was found and a centred square crop stands in for it."""
        return self.source == "center_crop"


_THREAD_STATE = threading.local()


def _cascade(name: str) -> cv2.CascadeClassifier:
    """One of OpenCV's shipped cascades, loaded once per thread.

    A ``CascadeClassifier`` keeps scratch buffers inside ``detectMultiScale``, so two threads
    must never share one (serving detects the faces of a folder's photos on several threads).
    """
    cascades = _THREAD_STATE.__dict__.setdefault("cascades", {})
    if name not in cascades:
        classifier = cv2.CascadeClassifier(cv2.data.haarcascades + name)
        if classifier.empty():  # pragma: no cover - the wheel ships these files
            raise RuntimeError(f"OpenCV cascade {name} could not be loaded")
        cascades[name] = classifier
    return cascades[name]


def detect_faces(grey: np.ndarray, limit: int, *, cascade: str = DETECT_CASCADE,
                 max_side: int = DETECT_MAX_SIDE, scale_step: float = DETECT_SCALE_STEP,
                 min_neighbors: int = DETECT_MIN_NEIGHBORS) -> list[tuple[int, int, int, int]]:
    """Every frontal face box ``(x, y, w, h)`` in a grey image, largest first, at most
    ``limit``: the one detector of the project (training takes the first box, serving all).

    The image is searched at most ``max_side`` pixels on its longer side (boxes are scaled
    back) with OpenCV's ``cascade``, the window growing by ``scale_step`` per level, a box
    kept where ``min_neighbors`` windows agree, with a minimum face of ``FACE_MIN_FRACTION``
    of the shorter side. Only the detector benchmark passes other settings than the defaults.
    """
    height, width = grey.shape
    scale = min(1.0, max_side / max(height, width))
    small = grey if scale == 1.0 else cv2.resize(
        grey, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
    )
    min_side = max(20, int(min(small.shape) * FACE_MIN_FRACTION))
    found = _cascade(cascade).detectMultiScale(
        small, scaleFactor=scale_step, minNeighbors=min_neighbors, minSize=(min_side, min_side)
    )
    boxes = sorted((tuple(int(v) for v in b) for b in found),
                   key=lambda b: (b[2] * b[3], b), reverse=True)[:limit]
    return [(round(x / scale), round(y / scale), round(w / scale), round(h / scale))
            for x, y, w, h in boxes]


def find_faces(grey: np.ndarray, limit: int, canonical: Points, *,
               enlarge_small: bool = True) -> list[Located]:
    """Every face of a grey photo, largest first, at most ``limit``, with its eye points: the
    photo chain of training (the first face) and serving (all of them).

    The upright search (:func:`detect_faces`) runs first; when it finds nothing, the searches
    of :data:`RETRY_ANGLES` run on a copy with a replicated border, each turned about the
    copy's centre, until one finds a face. Eyes come from the eye cascade inside each box of
    the search that found it, else from the canonical proportions of that box, and map back
    to the photo: a face found turned keeps its roll in its eye points, which the alignment
    warp then levels. Each returned box is the found box's size around its centre, mapped
    back. A small photo where this finds nothing is searched again enlarged
    (:data:`SMALL_PHOTO_SIDE`, :data:`SMALL_PHOTO_ZOOM`), eyes and boxes mapped back to it;
    only the detector benchmark turns that off (``enlarge_small``). An empty list means no
    face.
    """
    found = _search(grey, limit, canonical)
    if found or not enlarge_small or min(grey.shape[:2]) >= SMALL_PHOTO_SIDE:
        return found
    zoom = SMALL_PHOTO_ZOOM
    enlarged = cv2.resize(grey, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_LINEAR)
    return [_shrunk(located, zoom) for located in _search(enlarged, limit, canonical)]


def _shrunk(located: Located, zoom: float) -> Located:
    """A face found on a copy enlarged ``zoom`` times, in the photo's own pixels (pixel
    centres: ``x`` on the copy is ``(x + 0.5) / zoom - 0.5`` on the photo)."""
    eyes = tuple((float((x + 0.5) / zoom - 0.5), float((y + 0.5) / zoom - 0.5))
                 for x, y in located.eyes)
    x, y, w, h = located.box
    box = (round(x / zoom), round(y / zoom), round(w / zoom), round(h / zoom))
    return Located(eyes, located.source, box)  # type: ignore[arg-type]


def _search(grey: np.ndarray, limit: int, canonical: Points) -> list[Located]:
    """The upright search, then the padded and turned copies (see :func:`find_faces`)."""
    boxes = detect_faces(grey, limit)
    if boxes:
        return [_located(grey, box, None, canonical) for box in boxes]
    for angle in RETRY_ANGLES:  # each copy is made only when the searches before found nothing
        turned, back = _turned_copy(grey, angle)
        boxes = detect_faces(turned, limit)
        if boxes:
            return [_located(turned, box, back, canonical) for box in boxes]
    return []


def _turned_copy(grey: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """The photo with a replicated border of :data:`RETRY_PAD`, turned by ``angle`` degrees
    (counter-clockwise) about its centre, and the 2x3 matrix mapping its pixels back."""
    pad = round(RETRY_PAD * min(grey.shape[:2]))
    padded = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    height, width = padded.shape[:2]
    turn = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, 1.0)
    turned = padded if angle == 0 else cv2.warpAffine(
        padded, turn, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    back = cv2.invertAffineTransform(turn)
    back[:, 2] -= pad
    return turned, back


def _located(image: np.ndarray, box: tuple[int, int, int, int], back: np.ndarray | None,
             canonical: Points) -> Located:
    """Eye points for one box found in ``image`` (the photo, or a turned copy mapped back to
    it by ``back``)."""
    eyes = detect_eyes(image, box)
    source = "haar" if eyes is not None else "proportional"
    if eyes is None:
        eyes = proportional_eyes(box, canonical)
    if back is None:
        return Located(eyes, source, box)
    (lx, ly), (rx, ry) = (tuple(back @ np.array([x, y, 1.0])) for x, y in eyes)
    x, y, w, h = box
    cx, cy = back @ np.array([x + (w - 1) / 2, y + (h - 1) / 2, 1.0])
    photo_box = (round(cx - (w - 1) / 2), round(cy - (h - 1) / 2), w, h)
    return Located(((float(lx), float(ly)), (float(rx), float(ry))), source, photo_box)


def detect_eyes(grey: np.ndarray, box: tuple[int, int, int, int]) -> Points | None:
    """Eye centres found by the Haar eye cascade in the upper half of a face box.

    Returns (left, right) in image pixels (left = smaller x), or None unless exactly one
    plausible eye is found in each half of the box.
    """
    x, y, w, h = box
    region = grey[max(y, 0) : max(y, 0) + h // 2 + h // 10, max(x, 0) : max(x, 0) + w]
    if region.size == 0:
        return None
    scale = EYE_SEARCH_WIDTH / region.shape[1]
    small = cv2.resize(region, (EYE_SEARCH_WIDTH, max(1, round(region.shape[0] * scale))))
    side = max(8, EYE_SEARCH_WIDTH // 8)
    found = _cascade("haarcascade_eye.xml").detectMultiScale(
        small, scaleFactor=1.1, minNeighbors=3, minSize=(side, side)
    )
    half = EYE_SEARCH_WIDTH / 2
    left = [b for b in found if b[0] + b[2] / 2 < half]
    right = [b for b in found if b[0] + b[2] / 2 >= half]
    if not left or not right:
        return None
    picks = [max(group, key=lambda b: (b[2] * b[3], tuple(b))) for group in (left, right)]
    centres = [
        (max(x, 0) + (bx + bw / 2) / scale - 0.5, max(y, 0) + (by + bh / 2) / scale - 0.5)
        for bx, by, bw, bh in picks
    ]
    return (centres[0], centres[1])


def proportional_eyes(box: tuple[int, int, int, int], canonical: Points) -> Points:
    """Eyes at the canonical relative positions inside a box: the box itself becomes the crop."""
    x, y, w, h = box
    return tuple(  # type: ignore[return-value]
        (x + px * w - 0.5, y + py * h - 0.5) for px, py in canonical
    )


def alignment_matrix(eyes: Points, canonical: Points, size: int,
                     rotate: bool = True) -> np.ndarray:
    """The 2x3 similarity matrix that rotates the eyes level and moves them to set positions.

    Built as rotation about the eye midpoint (eyes level) followed by the scale and
    translation that puts them on ``canonical`` (fractions of a ``size`` square), so one
    warp does rotation, alignment and resizing together. ``rotate=False`` (the ablation of
    seed 000's eye-point rotation, ``preprocess.align: false``) keeps the head's roll: the eye
    midpoint and distance still place and scale the crop.
    """
    (lx, ly), (rx, ry) = eyes
    if not rotate:
        (clx, cly), (crx, cry) = canonical
        target_mid = np.array([(clx + crx) / 2 * size - 0.5, (cly + cry) / 2 * size - 0.5])
        scale = float(np.hypot((crx - clx) * size, (cry - cly) * size)) / max(
            float(np.hypot(rx - lx, ry - ly)), 1e-6)
        mid = np.array([(lx + rx) / 2, (ly + ry) / 2])
        return np.array([[scale, 0.0, target_mid[0] - scale * mid[0]],
                         [0.0, scale, target_mid[1] - scale * mid[1]]])
    (clx, cly), (crx, cry) = canonical
    angle = np.arctan2(ry - ly, rx - lx)
    mid = np.array([(lx + rx) / 2, (ly + ry) / 2])
    cos, sin = np.cos(-angle), np.sin(-angle)
    rotate = np.array(
        [[cos, -sin, mid[0] - cos * mid[0] + sin * mid[1]],
         [sin, cos, mid[1] - sin * mid[0] - cos * mid[1]],
         [0.0, 0.0, 1.0]]
    )
    source_distance = max(float(np.hypot(rx - lx, ry - ly)), 1e-6)
    target_left = np.array([clx * size - 0.5, cly * size - 0.5])
    target_right = np.array([crx * size - 0.5, cry * size - 0.5])
    target_angle = np.arctan2(*(target_right - target_left)[::-1])
    target_distance = float(np.hypot(*(target_right - target_left)))
    scale = target_distance / source_distance
    cos_t, sin_t = np.cos(target_angle) * scale, np.sin(target_angle) * scale
    target_mid = (target_left + target_right) / 2
    place = np.array(
        [[cos_t, -sin_t, target_mid[0] - cos_t * mid[0] + sin_t * mid[1]],
         [sin_t, cos_t, target_mid[1] - sin_t * mid[0] - cos_t * mid[1]],
         [0.0, 0.0, 1.0]]
    )
    return (place @ rotate)[:2]


def center_crop_matrix(height: int, width: int, size: int) -> np.ndarray:
    """The 2x3 matrix of the fallback: the centred square of the shorter side, resized."""
    side = min(height, width)
    scale = size / side
    x0, y0 = (width - side) / 2, (height - side) / 2
    return np.array(
        [[scale, 0.0, (0.5 - x0) * scale - 0.5], [0.0, scale, (0.5 - y0) * scale - 0.5]]
    )


def rescale_matrix(matrix: np.ndarray, from_shape: tuple[int, int], to_shape: tuple[int, int]):
    """Re-express a warp computed on one image size for a registered image of another size.

    Depth sensors often deliver a lower-resolution map of the same view; the colour matrix
    composed with the depth-to-colour scaling aligns it identically.
    """
    if from_shape == to_shape:
        return matrix
    sy, sx = from_shape[0] / to_shape[0], from_shape[1] / to_shape[1]
    to_colour = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])
    return (np.vstack([matrix, [0.0, 0.0, 1.0]]) @ to_colour)[:2]


def warp(image: np.ndarray, matrix: np.ndarray, size: int, *, nearest: bool = False):
    """Apply the alignment matrix and return a ``size`` x ``size`` crop.

    Colour is resampled bilinearly with replicated borders (no black wedges after rotation);
    depth uses nearest neighbour with a zero border, since 0 means "no measurement".
    """
    if nearest:
        return cv2.warpAffine(
            image, matrix, (size, size), flags=cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT, borderValue=0,
        )
    return cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def locate(
    image: np.ndarray,
    landmarks: tuple[float, float, float, float] | None,
    *,
    is_crop: bool,
    canonical: Points,
) -> Located:
    """Find the eye points of one image by the documented priority.

    Landmarks from the manifest win; a face crop without landmarks is taken as already framed
    (canonical positions in the whole image, i.e. a plain resize); a photo's largest face
    comes from :func:`find_faces` (Haar face cascade, then the eye cascade inside the box,
    else proportional positions in the box). Returns a :class:`Located` whose ``eyes`` is None
    when no face was found.
    """
    if landmarks is not None:
        lx, ly, rx, ry = (float(v) for v in landmarks)
        return Located(((lx, ly), (rx, ry)), "landmarks")
    height, width = image.shape[:2]
    if is_crop:
        box = (0, 0, width, height)
        return Located(proportional_eyes(box, canonical), "aligned_crop", box)
    found = find_faces(match_channels(image, 1), 1, canonical)
    return found[0] if found else Located(None, "center_crop")


def matrix_for(located: Located, shape: tuple[int, int], canonical: Points, size: int,
               rotate: bool = True):
    """The warp for a located face (``rotate``: level the eyes), or the centred-crop warp
    when no face was found."""
    if located.eyes is None:
        return center_crop_matrix(shape[0], shape[1], size)
    return alignment_matrix(located.eyes, canonical, size, rotate)
