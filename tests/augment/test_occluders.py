"""Each occluder covers the configured share of the face, where it should, via strict Compose."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest

from components.augment import KINDS, augment_config, draw_spec, occlude_image, strict_compose
from components.augment.geometry import canonical_eyes, face_box
from tests.augment.data import noise

TOLERANCE = 0.02


def changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    diff = before != after
    return diff if diff.ndim == 2 else diff.any(axis=2)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_covers_its_configured_face_fraction(kind: str) -> None:
    """Changed pixels inside the face box, measured, stay within the kind's range."""
    low, high = 0.12, 0.35
    cfg = augment_config(
        {"kinds": {kind: 1}, "area_range": [0.1, 0.4], "kind_area_ranges": {kind: [low, high]}}
    )
    rng = np.random.default_rng(7)
    measured = []
    for i in range(24):
        shape = [(48, 48), (64, 64, 3), (80, 70, 3)][i % 3]
        image = noise(shape, i)
        if i % 2:  # a face that is not a centred crop: eyes from landmarks
            eyes = (18.0 + i % 5, 30.0, 40.0 + i % 5, 32.0)
        else:
            eyes = canonical_eyes(shape[1], shape[0])
        spec = draw_spec(cfg, rng)
        assert spec.kind == kind
        out = occlude_image(image, eyes, spec)
        box = face_box(eyes, shape)
        fraction = changed(image, out.image)[box.y0 : box.y1, box.x0 : box.x1].mean()
        assert low - TOLERANCE <= fraction <= high + TOLERANCE, (kind, spec.area, fraction)
        assert abs(fraction - out.area) < 0.01  # the recorded area is the real one
        assert not changed(image, out.image)[~out.mask].any()  # nothing outside the occluder
        measured.append(fraction)
    assert np.ptp(measured) > 0.05  # the area really is drawn, not fixed


def _occlude(kind: str, area: float, seed: int = 0):
    cfg = augment_config({"kinds": {kind: 1}, "fills": {"color": 1}})
    spec = draw_spec(cfg, np.random.default_rng(seed), level=area)
    image = noise((96, 96, 3), seed)
    eyes = canonical_eyes(96, 96)
    return occlude_image(image, eyes, spec), eyes


def test_eyes_band_covers_both_eyes_and_not_the_mouth() -> None:
    for seed in range(5):
        out, (lx, ly, rx, ry) = _occlude("eyes_band", 0.2, seed)
        assert out.mask[int(ly), int(lx)] and out.mask[int(ry), int(rx)]
        assert not out.mask[int(ly + 1.1 * (rx - lx)), 48]


def test_one_eye_hides_exactly_one_eye() -> None:
    hidden = set()
    for seed in range(8):
        out, (lx, ly, rx, ry) = _occlude("one_eye", 0.1, seed)
        left, right = out.mask[int(ly), int(lx)], out.mask[int(ry), int(rx)]
        assert left != right
        hidden.add("left" if left else "right")
    assert hidden == {"left", "right"}


def test_mouth_and_lower_face_sit_below_the_eyes() -> None:
    for kind in ("mouth", "lower_face"):
        out, (_, ly, _, _) = _occlude(kind, 0.15)
        rows = np.nonzero(out.mask.any(axis=1))[0]
        assert rows.min() > ly, kind


@pytest.mark.filterwarnings("ignore:Argument")
def test_strict_compose_rejects_a_wrong_albumentations_argument() -> None:
    # fill_value is the albumentations 1.x name; strict mode must refuse it, not warn.
    with pytest.raises(ValueError, match="fill_value"):
        strict_compose([A.CoarseDropout(fill_value=0, p=1.0)], with_depth=False, seed=0)


def test_strict_compose_rejects_an_undeclared_target() -> None:
    compose = strict_compose([A.Erasing(p=1.0)], with_depth=False, seed=0)
    image = noise((16, 16, 3), 0)
    with pytest.raises(ValueError, match="depth"):
        compose(image=image, depth=image[..., 0])


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_hits_a_fixed_level_closely(kind: str) -> None:
    """At the range ends too: overlapping dropout holes must not shrink the covered area."""
    cfg = augment_config({"kinds": {kind: 1}, "fills": {"noise": 1}})
    for i in range(12):
        level = (0.1, 0.4)[i % 2]
        image = noise((48, 48), 100 + i)
        eyes = canonical_eyes(48, 48)
        out = occlude_image(image, eyes, draw_spec(cfg, np.random.default_rng(i), level=level))
        box = face_box(eyes, image.shape)
        fraction = changed(image, out.image)[box.y0 : box.y1, box.x0 : box.x1].mean()
        assert fraction == pytest.approx(level, abs=TOLERANCE), (kind, level)


def test_erasing_that_fits_no_rectangle_erases_nothing_instead_of_failing() -> None:
    # albumentations' Erasing drops its fill seed when no rectangle of the area fits, and
    # its apply then raises; the calibration search asks for such areas on wide, short crops.
    from components.augment.occluders import SeededErasing, applied_holes, plan_occluder

    impossible = SeededErasing(scale=(0.99, 0.99), ratio=(1.9, 2.0), p=1.0)
    assert applied_holes(impossible, (20, 60), seed=3).shape == (0, 4)
    plan = plan_occluder("erasing", (20, 60), 0.4, canonical_eyes(60, 20),
                         np.random.default_rng(0))
    assert 0.0 <= plan.area <= 1.0
