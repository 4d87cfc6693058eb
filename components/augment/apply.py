"""Occluding one sample in all its modalities: stills (colour, depth, 2-D camera) and clips.

The occluder is drawn once, on the primary colour image (a still's colour, a clip's first
frame). Depth shares the colour camera, so it gets the same holes in the same Compose call. The
2-D camera and later clip frames see the face elsewhere, so the painted occluder is carried
there by the similarity that maps the primary eyes onto theirs: it stays on the same part of
the face, like a real object would.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from components.augment.geometry import Box, Eyes, covered_fraction, face_box, similarity
from components.augment.occluders import (
    OccluderSpec,
    crop,
    fill_value,
    holes_from,
    holes_mask,
    near_depth,
    plan_occluder,
    strict_compose,
    texture,
)
from components.data.io import match_channels


@dataclass
class Occluded:
    """An occluded primary image with its mask and face box, plus any other modalities."""

    image: np.ndarray
    mask: np.ndarray
    box: Box
    area: float
    depth: np.ndarray | None = None
    color2d: np.ndarray | None = None
    frames: list[np.ndarray] | None = None


def occlude_image(
    image: np.ndarray,
    eyes: Eyes,
    spec: OccluderSpec,
    *,
    depth: np.ndarray | None = None,
    donor: np.ndarray | None = None,
) -> Occluded:
    """Occlude one colour image (and its registered depth map) on the face.

    Returns the occluded copies, the boolean occluder mask and the covered face fraction. The
    inputs are not modified.
    """
    rng = np.random.default_rng(spec.seed)
    box = face_box(eyes, image.shape)
    face = crop(image, box)
    crop_hw = face.shape[:2]
    eyes_in_crop = (eyes[0] - box.x0, eyes[1] - box.y0, eyes[2] - box.x0, eyes[3] - box.y0)
    plan = plan_occluder(spec.kind, crop_hw, spec.area, eyes_in_crop, rng)
    channels = 1 if image.ndim == 2 else image.shape[2]
    fill = fill_value(spec.fill, channels, rng)
    inputs = {"image": face}
    fill_mask = None
    if depth is not None:
        depth_face = crop(depth, box)
        fill_mask = near_depth(depth_face, spec.depth_offset)
        inputs["depth"] = depth_face
    transform = plan.factory(fill, fill_mask)
    compose = strict_compose([transform], with_depth=depth is not None, seed=plan.seed)
    result = compose(**inputs)
    mask_crop = holes_mask(holes_from(result), crop_hw)
    face_out = result["image"]
    if spec.fill == "texture" and mask_crop.any():
        face_out = _paste_texture(face_out, mask_crop, channels, donor, rng)
    out = image.copy()
    out[box.y0 : box.y1, box.x0 : box.x1] = face_out
    mask = np.zeros(image.shape[:2], dtype=bool)
    mask[box.y0 : box.y1, box.x0 : box.x1] = mask_crop
    occluded = Occluded(out, mask, box, covered_fraction(mask, box))
    if depth is not None:
        depth_out = depth.copy()
        depth_out[box.y0 : box.y1, box.x0 : box.x1] = result["depth"]
        occluded.depth = depth_out
    return occluded


def _paste_texture(
    face: np.ndarray,
    mask: np.ndarray,
    channels: int,
    donor: np.ndarray | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Fill the masked pixels with a texture patch spanning the mask's bounding box."""
    rows, cols = np.nonzero(mask)
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    patch = texture((int(y1 - y0), int(x1 - x0)), channels, donor, rng)
    out = face.copy()
    region = out[y0:y1, x0:x1]
    region[mask[y0:y1, x0:x1]] = patch[mask[y0:y1, x0:x1]]
    return out


def carry(
    layer: np.ndarray, mask: np.ndarray, matrix: np.ndarray, target: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Draw an occluder (painted ``layer`` where ``mask``) onto ``target`` through ``matrix``.

    Nearest-neighbour warping keeps fills exact (a black occluder stays 0, a colour stays that
    colour). Returns the new target and its mask.
    """
    size = (target.shape[1], target.shape[0])
    warped_mask = cv2.warpAffine(
        mask.astype(np.uint8), matrix, size, flags=cv2.INTER_NEAREST, borderValue=0
    ).astype(bool)
    channels = 1 if target.ndim == 2 else target.shape[2]
    source = match_channels(layer, channels)
    warped = cv2.warpAffine(source, matrix, size, flags=cv2.INTER_NEAREST, borderValue=0)
    warped = warped.reshape(target.shape)
    out = target.copy()
    out[warped_mask] = warped[warped_mask]
    return out, warped_mask


def occlude_still(
    color: np.ndarray,
    eyes: Eyes,
    spec: OccluderSpec,
    *,
    depth: np.ndarray | None = None,
    color2d: np.ndarray | None = None,
    eyes2d: Eyes | None = None,
    donor: np.ndarray | None = None,
) -> Occluded:
    """Occlude a still sample in every modality it has.

    The 2-D camera image receives the same occluder mapped through the eye similarity from the
    colour image to it (``eyes2d``, required when ``color2d`` is given).
    """
    occluded = occlude_image(color, eyes, spec, depth=depth, donor=donor)
    if color2d is not None:
        if eyes2d is None:
            raise ValueError("eyes2d is required with color2d")
        matrix = similarity(eyes, eyes2d)
        occluded.color2d, _ = carry(occluded.image, occluded.mask, matrix, color2d)
    return occluded


def occlude_clip(
    frames: list[np.ndarray],
    eyes_per_frame: list[Eyes],
    spec: OccluderSpec,
    *,
    donor: np.ndarray | None = None,
) -> Occluded:
    """Occlude a clip: one occluder drawn on frame 0 that follows the face through the clip."""
    first = occlude_image(frames[0], eyes_per_frame[0], spec, donor=donor)
    out = [first.image]
    for frame, eyes in zip(frames[1:], eyes_per_frame[1:], strict=True):
        matrix = similarity(eyes_per_frame[0], eyes)
        painted, _ = carry(first.image, first.mask, matrix, frame)
        out.append(painted)
    first.frames = out
    return first
