"""One occluder per sample, consistent across depth, the 2-D camera and the frames of a clip."""

from __future__ import annotations

import numpy as np
import pytest

from components.augment import KINDS, augment_config, draw_spec, occlude_clip, occlude_still
from components.augment.geometry import face_box
from tests.augment.data import clip_eyes, noise, smooth_depth


def changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    diff = before != after
    return diff if diff.ndim == 2 else diff.any(axis=2)


def centroid(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    return np.array([cols.mean(), rows.mean()])


@pytest.mark.parametrize("kind", KINDS)
def test_depth_is_occluded_where_colour_is_and_nearer_than_the_face(kind: str) -> None:
    cfg = augment_config({"kinds": {kind: 1}})
    color, depth = noise((64, 64, 3), 1), smooth_depth((64, 64), 1)
    eyes = (20.0, 26.0, 44.0, 26.0)
    out = occlude_still(color, eyes, draw_spec(cfg, np.random.default_rng(3)), depth=depth)
    colour_changed = changed(color, out.image)
    assert out.depth is not None and out.depth.dtype == np.uint16
    inside = out.depth[out.mask]
    box = face_box(eyes, depth.shape)
    face = depth[box.y0 : box.y1, box.x0 : box.x1]
    assert np.all(inside == inside[0]) and 0 < inside[0] < np.median(face[face > 0]) - 25
    depth_changed = out.depth != depth
    # Same geometry on both; depth may keep a pixel only where it already held the fill.
    assert not depth_changed[~out.mask].any()
    assert (depth_changed == out.mask).mean() > 0.99
    assert (colour_changed == out.mask).mean() > 0.99


def test_color2d_gets_the_occluder_mapped_through_its_own_eyes() -> None:
    cfg = augment_config({"kinds": {"mouth": 1}, "fills": {"black": 1}})
    color, color2d = noise((64, 64, 3), 2), noise((80, 80, 3), 3)
    eyes, eyes2d = (20.0, 26.0, 44.0, 26.0), (30.0, 34.0, 60.0, 34.0)  # 1.25x, shifted
    spec = draw_spec(cfg, np.random.default_rng(0), level=0.2)
    out = occlude_still(color, eyes, spec, color2d=color2d, eyes2d=eyes2d)
    assert out.color2d is not None
    hit2d = changed(color2d, out.color2d)
    expected = (centroid(out.mask) - [32, 26]) * 1.25 + [45, 34]
    assert np.abs(centroid(hit2d) - expected).max() < 1.0
    assert hit2d.sum() == pytest.approx(out.mask.sum() * 1.25**2, rel=0.08)
    assert np.all(out.color2d[hit2d] == 0)


@pytest.mark.parametrize("kind", ["coarse_dropout", "eyes_band", "grid_dropout", "one_eye"])
def test_clip_occluder_follows_the_face(kind: str) -> None:
    cfg = augment_config({"kinds": {kind: 1}})
    frames = [noise((64, 64, 3), 50 + t) for t in range(5)]
    eyes = [tuple(clip_eyes(t)) for t in range(5)]
    out = occlude_clip(frames, eyes, draw_spec(cfg, np.random.default_rng(4)), donor=frames[0])
    assert out.frames is not None and len(out.frames) == 5
    reference = None
    for t, (before, after) in enumerate(zip(frames, out.frames, strict=True)):
        box = face_box(eyes[t], before.shape)
        hit = changed(before, after)[box.y0 : box.y1, box.x0 : box.x1]
        if reference is None:
            reference = hit
        # The face moves 2 px right and 1 px down per frame; relative to it nothing moves.
        assert (hit == reference).mean() > 0.99, t
        assert hit.mean() == pytest.approx(out.area, abs=0.01)
