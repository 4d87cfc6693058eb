"""Occluder geometry and fills: albumentations dropouts and face-part occluders (seed 003).

Every occluder is computed on the face crop, so its covered fraction of the face is what the
params ask for. albumentations draws the random rectangles (CoarseDropout, Erasing,
GridDropout); their size parameters are calibrated by measuring the holes they actually
produce, because overlapping holes and integer rounding make the nominal size unreliable.
Face-part occluders (sunglasses band, mask, one eye, mouth) are placed from the eye positions
and painted through the same strict :func:`strict_compose`, so colour and depth of a sample are
hit by one call with the same holes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import albumentations as A
import cv2
import numpy as np
from albumentations.augmentations.dropout.transforms import BaseDropout

from components.augment.config import ALBU_KINDS, FILLS, KINDS, REGION_KINDS, AugmentConfig
from components.augment.geometry import Box, Eyes
from components.data.io import match_channels

# Calibration stops once the holes cover the target within this absolute face fraction.
CALIBRATION_TOLERANCE: float = 0.01
CALIBRATION_ATTEMPTS: int = 6
CALIBRATION_STEPS: int = 6
# Face-part occluders are jittered by +-10 % of their size around their anchor (methods.md 4.2).
JITTER: float = 0.1
# The mouth sits about 1.1 eye distances below the eye line on a frontal face.
MOUTH_BELOW_EYES: float = 1.1

Fill = float | tuple[float, ...] | str


@dataclass(frozen=True)
class OccluderSpec:
    """What to occlude with: kind, fill, target covered fraction of the face, private seed.

    ``seed`` drives every later random choice (geometry, colour, noise, texture), so a spec
    alone reproduces the occluder. ``depth_offset`` is in millimetres towards the camera.
    """

    kind: str
    fill: str
    area: float
    seed: int
    depth_offset: float


def draw_spec(
    cfg: AugmentConfig, rng: np.random.Generator, level: float | None = None
) -> OccluderSpec:
    """Draw kind and fill by the configured weights and the area (``level`` when given)."""
    kind = _weighted(rng, KINDS, cfg.kinds)
    fill = _weighted(rng, FILLS, cfg.fills)
    low, high = cfg.area_bounds(kind)
    area = float(level) if level is not None else float(rng.uniform(low, high))
    offset = float(rng.uniform(*cfg.depth_offset_mm))
    return OccluderSpec(kind, fill, area, int(rng.integers(0, 2**32 - 1)), offset)


def _weighted(rng: np.random.Generator, names: tuple[str, ...], weights: dict[str, float]) -> str:
    values = np.array([float(weights.get(name, 0.0)) for name in names])
    return names[int(rng.choice(len(names), p=values / values.sum()))]


def strict_compose(transforms: list[Any], *, with_depth: bool, seed: int) -> A.Compose:
    """A strict, seeded Compose that reports the holes it applied.

    ``strict=True`` makes albumentations reject unknown transform arguments and unknown data
    keys instead of warning, so a renamed argument (2.x renamed many) cannot silently turn an
    occluder into a no-op. Depth is an additional *mask* target: it gets the same holes as the
    colour image, filled with ``fill_mask`` (the nearer-than-face depth), never interpolated.

    Raises:
        ValueError: a transform was built with an argument it does not accept.
    """
    targets = {"depth": "mask"} if with_depth else None
    return A.Compose(
        transforms, additional_targets=targets, strict=True, seed=seed, save_applied_params=True
    )


class PlacedDropout(BaseDropout):
    """Drop rectangles computed beforehand (face-part occluders placed from the eyes)."""

    class InitSchema(BaseDropout.InitSchema):
        holes: list[tuple[int, int, int, int]]

    def __init__(
        self,
        holes: list[tuple[int, int, int, int]],
        fill: Fill = 0,
        fill_mask: float | None = None,
        p: float = 1.0,
    ):
        super().__init__(fill=fill, fill_mask=fill_mask, p=p)
        self.holes = holes

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict:
        """The fixed holes plus the seed albumentations uses for random fills."""
        holes = np.asarray(self.holes, dtype=np.int64).reshape(-1, 4)
        return {"holes": holes, "seed": self.random_generator.integers(0, 2**32 - 1)}


class SeededErasing(A.Erasing):
    """albumentations' Erasing, whose parameters always carry the fill seed.

    When no rectangle of the asked area and aspect fits the crop, albumentations 2.0.8's
    Erasing returns its empty holes without the seed its ``apply`` requires and fails with
    a TypeError; the calibration search can ask for such areas. Here the empty result erases
    nothing and the search moves on, as for the other kinds.
    """

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict:
        """Erasing's holes, plus a seed when it drew none."""
        drawn = super().get_params_dependent_on_data(params, data)
        drawn.setdefault("seed", self.random_generator.integers(0, 2**32 - 1))
        return drawn


# A factory builds the transform for given fill values; calibration only looks at its holes.
Factory = Callable[[Fill, float | None], Any]


@dataclass(frozen=True)
class Plan:
    """A transform factory and the Compose seed that together give the wanted holes."""

    factory: Factory
    seed: int
    area: float


def plan_occluder(
    kind: str, crop_hw: tuple[int, int], target: float, eyes: Eyes, rng: np.random.Generator
) -> Plan:
    """Plan the occluder of ``kind`` on a face crop so that it covers ``target`` of the crop.

    ``eyes`` are in crop coordinates (used by face-part kinds). Returns the plan whose measured
    coverage is closest to the target.
    """
    if kind in REGION_KINDS:
        hole = region_hole(kind, crop_hw, target, eyes, rng)
        area = hole_area([hole], crop_hw)
        seed = int(rng.integers(0, 2**31 - 1))
        return Plan(lambda fill, fill_mask: PlacedDropout([hole], fill, fill_mask), seed, area)
    if kind not in ALBU_KINDS:
        raise ValueError(f"unknown occluder kind {kind!r}")
    return _calibrate(kind, crop_hw, target, rng)


def _calibrate(
    kind: str, crop_hw: tuple[int, int], target: float, rng: np.random.Generator
) -> Plan:
    """Search the kind's size parameter until its real holes cover the target fraction."""
    best: Plan | None = None
    for _ in range(CALIBRATION_ATTEMPTS):
        seed = int(rng.integers(0, 2**31 - 1))
        make, param, update = _albu_family(kind, crop_hw, target, rng)
        for _ in range(CALIBRATION_STEPS):
            factory = _bind(make, param)
            area = hole_area(applied_holes(factory(0, None), crop_hw, seed), crop_hw)
            if best is None or abs(area - target) < abs(best.area - target):
                best = Plan(factory, seed, area)
            if abs(area - target) <= CALIBRATION_TOLERANCE:
                return best
            param = update(param, area)
    assert best is not None
    return best


def _bind(make: Callable[..., Any], param: float) -> Factory:
    return lambda fill, fill_mask: make(param, fill, fill_mask)


def _albu_family(
    kind: str, crop_hw: tuple[int, int], target: float, rng: np.random.Generator
) -> tuple[Callable[..., Any], float, Callable[[float, float], float]]:
    """(make(param, fill, fill_mask), first param, update(param, measured)) for one kind."""
    height, width = crop_hw
    if kind == "erasing":
        # Keep aspect ratios for which albumentations can fit the whole area in the crop;
        # outside them Erasing silently erases nothing.
        r_low = max(0.5, 1.02 * target * height / width)
        r_high = max(r_low, min(2.0, 0.98 * width / (target * height)))

        def make_erasing(scale: float, fill: Fill, fill_mask: float | None) -> Any:
            scale = min(float(scale), 1.0)
            return SeededErasing(
                scale=(scale, scale), ratio=(r_low, r_high), fill=fill, fill_mask=fill_mask, p=1.0
            )

        return make_erasing, target, lambda s, got: _rescale(s, target, got, 1.0)
    if kind == "coarse_dropout":
        holes = int(rng.integers(1, 4))
        aspect = float(np.exp(rng.uniform(math.log(0.5), math.log(2.0))))

        def make_coarse(scale: float, fill: Fill, fill_mask: float | None) -> Any:
            hole = scale * height * width / holes
            hole_h = int(np.clip(round(math.sqrt(hole / aspect)), 1, height))
            hole_w = int(np.clip(round(hole / hole_h), 1, width))
            return A.CoarseDropout(
                num_holes_range=(holes, holes),
                hole_height_range=(hole_h, hole_h),
                hole_width_range=(hole_w, hole_w),
                fill=fill,
                fill_mask=fill_mask,
                p=1.0,
            )

        return make_coarse, target, lambda s, got: _rescale(s, target, got, 1.0)
    cells = int(rng.integers(2, max(2, min(5, min(height, width) // 5)) + 1))

    def make_grid(ratio: float, fill: Fill, fill_mask: float | None) -> Any:
        return A.GridDropout(
            ratio=float(np.clip(ratio, 0.05, 1.0)),
            holes_number_xy=(cells, cells),
            random_offset=True,
            fill=fill,
            fill_mask=fill_mask,
            p=1.0,
        )

    # Grid coverage grows with the square of the ratio.
    return make_grid, math.sqrt(target), lambda r, got: _rescale(r, target, got, 0.5)


def _rescale(param: float, target: float, got: float, power: float) -> float:
    if got <= 0:
        return param * 1.5
    return param * (target / got) ** power


def applied_holes(transform: Any, crop_hw: tuple[int, int], seed: int) -> np.ndarray:
    """The holes a transform draws on a crop of this size under ``seed`` (pixels, x0 y0 x1 y1).

    Holes depend only on the shape and the seed, so a blank crop stands in for the image.
    """
    compose = strict_compose([transform], with_depth=False, seed=seed)
    out = compose(image=np.zeros(crop_hw, dtype=np.uint8))
    return holes_from(out)


def holes_from(result: dict[str, Any]) -> np.ndarray:
    """Read the applied holes out of a :func:`strict_compose` result."""
    for _, params in result.get("applied_transforms", []):
        if "holes" in params:
            return np.asarray(params["holes"], dtype=np.int64).reshape(-1, 4)
    return np.zeros((0, 4), dtype=np.int64)


def holes_mask(holes: np.ndarray | list, crop_hw: tuple[int, int]) -> np.ndarray:
    """Boolean mask of the union of the holes."""
    mask = np.zeros(crop_hw, dtype=bool)
    for x0, y0, x1, y1 in np.asarray(holes, dtype=np.int64).reshape(-1, 4):
        mask[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = True
    return mask


def hole_area(holes: np.ndarray | list, crop_hw: tuple[int, int]) -> float:
    """Fraction of the crop that the union of the holes covers (overlaps counted once)."""
    return float(holes_mask(holes, crop_hw).mean())


def region_hole(
    kind: str, crop_hw: tuple[int, int], target: float, eyes: Eyes, rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """One rectangle over a facial part, with exactly ``target`` of the crop's area (rounded).

    The rectangle is shifted, never clipped, to stay inside the crop, so its area is kept.
    """
    height, width = crop_hw
    area = target * height * width
    lx, ly, rx, ry = eyes
    dist = max(1.0, math.hypot(rx - lx, ry - ly))
    eye_x, eye_y = (lx + rx) / 2, (ly + ry) / 2
    jitter = rng.uniform(-JITTER, JITTER, size=2)
    if kind == "eyes_band":
        box_w = width * rng.uniform(0.9, 1.0)
        centre = (eye_x + jitter[0] * box_w, eye_y + jitter[1] * area / box_w)
    elif kind == "lower_face":
        box_w = width * rng.uniform(0.85, 1.0)
        box_h = area / box_w
        bottom = height - abs(jitter[1]) * box_h
        centre = (eye_x + jitter[0] * box_w, bottom - box_h / 2)
    elif kind == "one_eye":
        box_w = min(math.sqrt(area * rng.uniform(0.8, 1.25)), 0.6 * width)
        pick = (lx, ly) if rng.random() < 0.5 else (rx, ry)
        centre = (pick[0] + jitter[0] * box_w, pick[1] + jitter[1] * area / box_w)
    elif kind == "mouth":
        box_w = min(math.sqrt(area * rng.uniform(1.3, 2.0)), width)
        mouth_y = eye_y + MOUTH_BELOW_EYES * dist
        centre = (eye_x + jitter[0] * box_w, mouth_y + jitter[1] * area / box_w)
    else:
        raise ValueError(f"{kind!r} is not a face-part occluder")
    return _fit_rect(centre, box_w, area, crop_hw)


def _fit_rect(
    centre: tuple[float, float], box_w: float, area: float, crop_hw: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Integer rectangle of ~``area`` pixels near ``centre``, moved to lie inside the crop."""
    height, width = crop_hw
    w_px = int(np.clip(round(box_w), 1, width))
    h_px = int(np.clip(round(area / w_px), 1, height))
    if h_px == height:  # too tall for the crop: widen instead so the area still holds
        w_px = int(np.clip(round(area / h_px), 1, width))
    x0 = int(np.clip(round(centre[0] - w_px / 2), 0, width - w_px))
    y0 = int(np.clip(round(centre[1] - h_px / 2), 0, height - h_px))
    return (x0, y0, x0 + w_px, y0 + h_px)


def fill_value(fill: str, channels: int, rng: np.random.Generator) -> Fill:
    """The albumentations ``fill`` for a fill name; texture is pasted afterwards (starts black)."""
    if fill == "noise":
        return "random"
    if fill == "color":
        colour = tuple(float(v) for v in rng.integers(0, 256, size=channels))
        return colour if channels > 1 else colour[0]
    return 0.0


def near_depth(depth_crop: np.ndarray, offset: float) -> float:
    """Depth of an occluder held in front of the face: the face median minus ``offset`` mm.

    Holes (0) are ignored; a crop with no valid depth gives ``offset`` itself, still non-zero so
    the occluder never reads as missing depth.
    """
    valid = depth_crop[depth_crop > 0]
    if valid.size == 0:
        return float(max(1.0, offset))
    return float(max(1.0, float(np.median(valid)) - offset))


def texture(
    hw: tuple[int, int], channels: int, donor: np.ndarray | None, rng: np.random.Generator
) -> np.ndarray:
    """A texture patch of size ``hw``: a random crop of a donor image, else a procedural pattern.

    Returns uint8 (H, W) for one channel or (H, W, C).
    """
    height, width = hw
    if donor is not None and donor.size:
        patch = _donor_patch(match_channels(donor.astype(np.uint8), channels), hw, rng)
    else:
        patch = _procedural(hw, channels, rng)
    return patch.reshape(height, width) if channels == 1 else patch


def _donor_patch(image: np.ndarray, hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    height, width = hw
    scale = max(height / image.shape[0], width / image.shape[1], 1.0)
    if scale > 1.0:
        size = (math.ceil(image.shape[1] * scale), math.ceil(image.shape[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    y0 = int(rng.integers(0, image.shape[0] - height + 1))
    x0 = int(rng.integers(0, image.shape[1] - width + 1))
    return image[y0 : y0 + height, x0 : x0 + width].copy()


def _procedural(hw: tuple[int, int], channels: int, rng: np.random.Generator) -> np.ndarray:
    """Two crossed sinusoidal gratings between two random colours (fabric / hand-like stripes)."""
    height, width = hw
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    pattern = np.zeros(hw)
    for _ in range(2):
        angle, period = rng.uniform(0, math.pi), rng.uniform(3.0, 12.0)
        phase = rng.uniform(0, 2 * math.pi)
        along = xx * math.cos(angle) + yy * math.sin(angle)
        pattern += np.sin(along * 2 * math.pi / period + phase)
    weight = (pattern - pattern.min()) / max(float(np.ptp(pattern)), 1e-9)
    low, high = rng.integers(0, 256, size=(2, channels)).astype(np.float64)
    image = low + weight[..., None] * (high - low)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    """The face-box crop of an image (a copy, so pasting back is explicit)."""
    return image[box.y0 : box.y1, box.x0 : box.x1].copy()
