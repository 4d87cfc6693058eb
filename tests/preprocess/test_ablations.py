"""The preprocessing switches claim 5's ablation needs: eye-level rotation off, stretch off."""

from __future__ import annotations

import numpy as np
import pytest

from components.errors import ConfigError
from components.preprocess import align
from components.preprocess.config import preprocess_config
from components.preprocess.process import TaskPlan, finish_clip, finish_stills

CANONICAL = ((0.3, 0.38), (0.7, 0.38))


def _apply(matrix: np.ndarray, point: tuple[float, float]) -> np.ndarray:
    return matrix @ np.array([point[0], point[1], 1.0])


def test_alignment_without_rotation_places_and_scales_but_keeps_the_roll() -> None:
    eyes = ((30.0, 40.0), (70.0, 52.0))  # a tilted head
    rotated = align.alignment_matrix(eyes, CANONICAL, 48)
    kept = align.alignment_matrix(eyes, CANONICAL, 48, rotate=False)
    assert kept[0, 1] == 0.0 and kept[1, 0] == 0.0  # no rotation
    assert abs(rotated[0, 1]) > 0.01
    midpoint = ((eyes[0][0] + eyes[1][0]) / 2, (eyes[0][1] + eyes[1][1]) / 2)
    target = np.array([0.5 * 48 - 0.5, 0.38 * 48 - 0.5])
    np.testing.assert_allclose(_apply(kept, midpoint), target, atol=1e-9)
    np.testing.assert_allclose(_apply(rotated, midpoint), target, atol=1e-9)
    # same scale: the eye distance maps to the canonical distance either way
    assert np.hypot(*kept[:, 0]) == pytest.approx(np.hypot(*rotated[:, 0]))


def _plan(**params) -> TaskPlan:
    config = preprocess_config({"size": 8, "clip_size": 8, "clip_frames": 2, **params})
    return TaskPlan("image", 8, 3, ("color",), config)


def test_stretch_off_only_scales_colour_to_unit_range() -> None:
    rng = np.random.default_rng(0)
    dull = rng.integers(100, 140, size=(2, 3, 8, 8)).astype(np.uint8)  # low contrast
    plain = finish_stills(dull, "color", _plan(stretch=False)).astype(np.float32)
    np.testing.assert_allclose(plain, (dull / 255.0).astype(np.float16), atol=1e-3)
    stretched = finish_stills(dull, "color", _plan()).astype(np.float32)
    assert stretched.min() == 0.0 and stretched.max() == 1.0
    clip = rng.integers(100, 140, size=(2, 3, 8, 8)).astype(np.uint8)  # (T, C, H, W)
    np.testing.assert_allclose(finish_clip(clip, _plan(stretch=False)).astype(np.float32),
                               (clip / 255.0).astype(np.float16), atol=1e-3)


@pytest.mark.parametrize("key", ["align", "stretch"])
def test_switches_must_be_booleans(key: str) -> None:
    with pytest.raises(ConfigError, match=f"preprocess.{key}"):
        preprocess_config({key: "off"})
