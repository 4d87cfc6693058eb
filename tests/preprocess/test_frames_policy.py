"""Clip length normalisation, and what happens when no face is found."""

from __future__ import annotations

import numpy as np
import pytest

from components.data.io import write_image
from components.preprocess import preprocess_config
from components.preprocess.frames import resample_clip
from components.preprocess.process import TaskPlan, process_chunk
from tests.preprocess.faces import drawn_photo


def _ramp(count: int) -> np.ndarray:
    """Frames whose every pixel equals the frame index (so the sampling is readable)."""
    return np.arange(count, dtype=np.float32)[:, None, None, None] * np.ones((1, 1, 2, 2))


@pytest.mark.parametrize("method", ["interpolate", "keyframes"])
@pytest.mark.parametrize("count", [1, 3, 8, 21])
def test_clips_come_out_with_exactly_t_frames(method, count):
    out = resample_clip(_ramp(count), 8, method)
    assert out.shape == (8, 1, 2, 2)


def test_interpolate_blends_neighbours_when_short_and_samples_uniformly_when_long():
    short = resample_clip(_ramp(5), 8, "interpolate")[:, 0, 0, 0]
    np.testing.assert_allclose(short, np.linspace(0, 4, 8), atol=1e-6)
    long = resample_clip(_ramp(22), 8, "interpolate")[:, 0, 0, 0]
    np.testing.assert_array_equal(long, [0, 3, 6, 9, 12, 15, 18, 21])


def test_keyframes_repeat_real_frames_when_short():
    short = resample_clip(_ramp(3), 8, "keyframes")[:, 0, 0, 0]
    assert set(short.tolist()) == {0.0, 1.0, 2.0}  # only real frames, never blends
    assert list(short) == sorted(short) and short[0] == 0 and short[-1] == 2


def _blank_photo(tmp_path, name="blank.png"):
    noise = np.random.default_rng(0).integers(100, 140, (240, 320, 3)).astype(np.uint8)
    return str(write_image(tmp_path / name, noise))


def _plan(policy: str, size: int = 48) -> TaskPlan:
    config = preprocess_config({"size": size, "input": "photo", "face_policy": policy})
    return TaskPlan("image", size, 3, ("color",), config)


def test_center_crop_policy_flags_the_fallback(tmp_path):
    face_path = str(write_image(tmp_path / "face.png", drawn_photo()[0]))
    rows = [{"id": "blank", "color": _blank_photo(tmp_path)}, {"id": "face", "color": face_path}]
    result = process_chunk(rows, _plan("center_crop"))
    assert result.kept.tolist() == [True, True]
    assert result.fallback.tolist() == [True, False]
    assert result.arrays["color"].shape == (2, 3, 48, 48)


def test_drop_policy_removes_and_counts(tmp_path):
    face_path = str(write_image(tmp_path / "face.png", drawn_photo()[0]))
    rows = [{"id": "blank", "color": _blank_photo(tmp_path)}, {"id": "face", "color": face_path}]
    result = process_chunk(rows, _plan("drop"))
    assert result.kept.tolist() == [False, True]
    assert result.arrays["color"].shape == (1, 3, 48, 48)
    assert result.faces == 2 and result.faces_found == 1


def test_clip_frames_without_a_face_are_dropped_before_resampling(tmp_path):
    folder = tmp_path / "clip"
    photo = drawn_photo(240, 320, face_width=110)[0]
    blank = np.full_like(photo, 128)
    for i, frame in enumerate([photo, blank, photo, blank, photo]):
        write_image(folder / f"{i:03d}.png", frame)
    config = preprocess_config({"clip_size": 32, "clip_frames": 6, "input": "photo"})
    plan = TaskPlan("video", 32, 3, ("frames",), config)
    result = process_chunk([{"id": "c", "frames": str(folder)}], plan)
    assert result.arrays["frames"].shape == (1, 6, 3, 32, 32)
    assert result.dropped_frames == 2 and not result.fallback[0]
