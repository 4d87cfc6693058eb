"""Eye alignment: known eye points land on the canonical positions; depth follows exactly."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from components.data.io import write_image
from components.preprocess import align, preprocess_config
from components.preprocess.process import TaskPlan, process_chunk
from tests.preprocess.faces import blob_face, dark_centroids, drawn_photo, marker_depth, rotated

SIZE = 96


def _plan(**overrides) -> TaskPlan:
    # A min-max stretch keeps the drawn face's three grey levels apart, so blobs are findable.
    values = {"size": SIZE, "input": "photo", "stretch_percentiles": [0, 100], **overrides}
    config = preprocess_config(values)
    return TaskPlan("image", SIZE, 3, ("color", "depth", "color2d"), config)


def _canonical() -> list[tuple[float, float]]:
    return [(0.3 * SIZE - 0.5, 0.38 * SIZE - 0.5), (0.7 * SIZE - 0.5, 0.38 * SIZE - 0.5)]


@pytest.fixture
def rgbd_sample(tmp_path):
    """A rotated face (eyes at 17 degrees) with a depth map whose bumps sit under the eyes,
    a hole in the depth, and a separate 2-D image with the eyes elsewhere."""
    left = rotated((150.0, 120.0), (-38.3, 0.0), 17.0)
    right = rotated((150.0, 120.0), (38.3, 0.0), 17.0)
    colour = blob_face(240, 300, left, right)
    depth = marker_depth(240, 300, [left, right], hole=(140, 150, 160, 170))
    left2, right2 = rotated((100.0, 90.0), (-20.2, 0.0), -9.0), rotated((100.0, 90.0),
                                                                        (20.2, 0.0), -9.0)
    colour2d = blob_face(200, 220, left2, right2, radius=2.5)
    paths = {
        "color": write_image(tmp_path / "s_color.png", colour),
        "depth": write_image(tmp_path / "s_depth.png", depth),
        "color2d": write_image(tmp_path / "s_2d.png", colour2d),
    }
    landmarks = {"color": [[*left, *right]], "color2d": [[*left2, *right2]]}
    row = {"id": "s", **{k: str(v) for k, v in paths.items()}, "frames": None,
           "landmarks": json.dumps(landmarks)}
    return row, depth


def test_eyes_land_on_canonical_positions_within_one_pixel(rgbd_sample):
    row, _ = rgbd_sample
    result = process_chunk([row], _plan())
    colour = result.arrays["color"][0, 0].astype(np.float32)
    found = dark_centroids(colour, threshold=0.5)
    assert len(found) == 2
    for (fx, fy), (cx, cy) in zip(found, _canonical(), strict=True):
        assert abs(fx - cx) < 1.0 and abs(fy - cy) < 1.0, (found, _canonical())
    assert result.eye_sources["landmarks"] == 1 and not result.fallback[0]


def test_second_camera_image_uses_its_own_eyes(rgbd_sample):
    row, _ = rgbd_sample
    result = process_chunk([row], _plan())
    found = dark_centroids(result.arrays["color2d"][0, 0].astype(np.float32), threshold=0.5)
    assert len(found) == 2
    for (fx, fy), (cx, cy) in zip(found, _canonical(), strict=True):
        assert abs(fx - cx) < 1.0 and abs(fy - cy) < 1.0


def test_depth_moves_with_the_colour_warp(rgbd_sample):
    row, _ = rgbd_sample
    result = process_chunk([row], _plan())
    depth = result.arrays["depth"][0, 0].astype(np.float32)
    colour = result.arrays["color"][0, 0].astype(np.float32)
    # Near = bright: the bumps under the eyes are the brightest depth pixels.
    bumps = dark_centroids(1.0 - depth, threshold=0.25)
    eyes = dark_centroids(colour, threshold=0.5)
    assert len(bumps) == 2
    for (bx, by), (ex, ey) in zip(bumps, eyes, strict=True):
        assert abs(bx - ex) < 0.75 and abs(by - ey) < 0.75


def test_depth_is_warped_nearest_neighbour_so_holes_never_blend(rgbd_sample):
    row, raw_depth = rgbd_sample
    result = process_chunk([row], _plan())
    depth = result.arrays["depth"][0, 0]
    assert (depth == 0).any(), "the hole must survive the warp"
    # Every output value must be the window mapping of some input value (no blended values).
    median = 800.0
    mapped = np.clip((median + 100 - raw_depth[raw_depth > 0]) / 200.0, 0, 1).astype(np.float16)
    allowed = set(np.unique(mapped).tolist()) | {0.0}
    assert set(np.unique(depth).tolist()) <= allowed


def test_haar_cascade_finds_a_drawn_face_in_a_photo():
    photo, (cx, cy) = drawn_photo()
    located = align.locate(photo, None, is_crop=False,
                           canonical=((0.3, 0.38), (0.7, 0.38)))
    assert located.source in ("haar", "proportional")
    x, y, w, h = located.box
    assert x < cx < x + w and y < cy < y + h
    assert 100 < w < 400


def test_a_rolled_face_the_upright_search_misses_is_found_on_a_turned_copy():
    photo, (cx, cy) = drawn_photo()
    # Roll the face 30 degrees (counter-clockwise on screen) about its centre: neither the
    # upright search nor the padded one finds it (the cartoon face is found up to about 26).
    roll = cv2.getRotationMatrix2D((cx, cy), 30.0, 1.0)
    grey = cv2.warpAffine(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY), roll, photo.shape[1::-1],
                          borderMode=cv2.BORDER_REPLICATE)
    assert align.detect_faces(grey, 3) == [], "premise: the upright cascade misses this roll"
    found = align.find_faces(grey, 3, ((0.3, 0.38), (0.7, 0.38)))
    assert len(found) == 1
    x, y, w, h = found[0].box
    assert x < cx < x + w and y < cy < y + h and 100 < w < 400
    (lx, ly), (rx, ry) = found[0].eyes
    # The eye points keep (part of) the roll, so the alignment warp turns the face back.
    assert -30.0 < np.degrees(np.arctan2(ry - ly, rx - lx)) < -5.0
    assert align.locate(grey, None, is_crop=False,
                        canonical=((0.3, 0.38), (0.7, 0.38))).box == found[0].box


def test_a_face_too_small_for_the_cascade_is_found_on_an_enlarged_copy():
    photo, (cx, cy) = drawn_photo()
    scale = 33 / photo.shape[0]  # a 44x33 thumbnail: the face is under the 20-px window
    grey = cv2.resize(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY), None, fx=scale, fy=scale,
                      interpolation=cv2.INTER_AREA)
    canonical = ((0.3, 0.38), (0.7, 0.38))
    assert align.find_faces(grey, 3, canonical, enlarge_small=False) == [], "premise"
    (found,) = align.find_faces(grey, 3, canonical)
    x, y, w, h = found.box  # in the thumbnail's own pixels
    assert x < cx * scale < x + w and y < cy * scale < y + h and 10 <= w <= 30
    (lx, ly), (rx, ry) = found.eyes
    assert x <= lx < rx <= x + w and y <= ly <= y + h / 2 + 1 and abs(ly - ry) < 1


def test_no_search_finds_a_face_in_noise_or_a_flat_image():
    noise = np.random.default_rng(0).integers(0, 256, (480, 640), dtype=np.uint8)
    small_noise = np.random.default_rng(1).integers(0, 256, (64, 64), dtype=np.uint8)
    flat = np.full((96, 96), 128, np.uint8)
    for grey in (noise, small_noise, flat):
        assert align.find_faces(grey, 3, ((0.3, 0.38), (0.7, 0.38))) == []


def test_alignment_matrix_maps_eyes_exactly():
    eyes = ((40.2, 61.7), (88.9, 45.1))
    matrix = align.alignment_matrix(eyes, ((0.3, 0.38), (0.7, 0.38)), 48)
    mapped = [matrix @ np.array([x, y, 1.0]) for x, y in eyes]
    np.testing.assert_allclose(mapped, [[13.9, 17.74], [33.1, 17.74]], atol=1e-9)
