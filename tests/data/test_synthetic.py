"""The synthetic RGB-D + video source: layout, determinism, landmark accuracy, difficulty."""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from components.config import load_params
from components.data import synth_render as render
from components.data.io import read_frames, read_image
from components.data.labels import CANONICAL_LABELS
from components.data.synthetic import (
    CLIP_COLUMNS,
    RGBD_COLUMNS,
    SyntheticConfig,
    clip_expression_weights,
    generate,
    is_current,
)
from components.errors import ConfigError, DataError

REPO_ROOT = Path(__file__).resolve().parents[2]


def tiny(**overrides) -> SyntheticConfig:
    """A config that renders in about a second: every class, stills and short clips."""
    values = dict(subjects=2, stills_per_subject_class=1, image_size=48,
                  clips_per_subject_class=1, clip_frames=3, clip_size=32)
    values.update(overrides)
    return SyntheticConfig(**values)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def file_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny_out(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synthetic") / "data"
    return out, generate(tiny(), out, progress=False)


# ----------------------------------------------------------------------------- config


def test_params_section_builds_the_config():
    section = load_params(REPO_ROOT / "params.yaml")["synthetic"]
    cfg = SyntheticConfig.from_params(section)
    assert cfg.classes == list(CANONICAL_LABELS)
    assert cfg.image_size == section["image_size"]
    assert SyntheticConfig(classes=("angry", "joy")).classes == ["anger", "happiness"]


@pytest.mark.parametrize("bad", [{"image_size": 8}, {"classes": ["anger", "grumpy"]},
                                 {"colour": True}, {"subjects": "many"},
                                 {"stills_per_subject_class": 0, "clips_per_subject_class": 0}])
def test_bad_params_are_rejected_naming_the_key(bad):
    with pytest.raises(ConfigError) as err:
        SyntheticConfig.from_params({"seed": 1, **bad})
    assert next(iter(bad)) in str(err.value)


# ----------------------------------------------------------------------------- layout


def test_layout_dtypes_and_every_class(tiny_out):
    out, summary = tiny_out
    assert summary["stills"] == 2 * 8 and summary["clips"] == 2 * 8
    assert "seed: 7" in (out / "README.md").read_text()
    rows = read_rows(out / "rgbd" / "labels.csv")
    assert list(rows[0]) == list(RGBD_COLUMNS)
    assert {r["label"] for r in rows} == set(CANONICAL_LABELS)
    assert {r["subject"] for r in rows} == {"s00", "s01"}
    assert all(re.fullmatch(r"s0[01]_[a-z]+_00", r["id"]) for r in rows)
    assert {r["light_level"] for r in rows} <= {"dark", "normal", "bright"}
    holes = []
    for row in rows:
        color = read_image(out / "rgbd" / f"{row['id']}_color.png")
        depth = read_image(out / "rgbd" / f"{row['id']}_depth.png", depth=True)
        second = read_image(out / "rgbd" / f"{row['id']}_2d.png")
        assert color.shape == (48, 48, 3) and color.dtype == np.uint8
        assert second.shape == (48, 48, 3) and not np.array_equal(second, color)
        assert depth.shape == (48, 48) and depth.dtype == np.uint16
        holes.append(float(np.mean(depth == 0)))
        # The face is the nearest thing, at a usual sensor distance; the wall is far behind.
        assert 400 < depth[depth > 0].min() < 800 and depth.max() > 1000
    assert 0 < np.mean(holes) < 0.2


def test_clips_hold_exactly_clip_frames_and_landmarks(tiny_out):
    out, _ = tiny_out
    rows = read_rows(out / "clips" / "labels.csv")
    assert list(rows[0]) == list(CLIP_COLUMNS)
    assert {r["label"] for r in rows} == set(CANONICAL_LABELS)
    assert rows[0]["clip"] == "clip_00000"
    for row in rows:
        folder = out / "clips" / row["clip"]
        frames = read_frames(folder)
        assert len(frames) == 3 and sorted(p.name for p in folder.glob("*.png")) == [
            "frame_000.png", "frame_001.png", "frame_002.png"]
        assert all(f.shape == (32, 32, 3) for f in frames)
        marks = read_rows(folder / "landmarks.csv")
        assert [int(m["frame"]) for m in marks] == [0, 1, 2]
        eyes = np.array([[float(m[k]) for k in ("lx", "ly", "rx", "ry")] for m in marks])
        # Same person, roughly the same pose: the eyes move a little, not across the frame.
        assert np.abs(eyes - eyes[0]).max() < 0.15 * 32
        assert np.all(eyes[:, 0] < eyes[:, 2])


def test_refuses_a_foreign_folder_and_replaces_its_own(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not written by the synthetic generator"):
        generate(tiny(subjects=1, classes=["anger"]), foreign, progress=False)
    assert (foreign / "notes.txt").read_text() == "keep me"

    out = tmp_path / "synth"
    generate(tiny(subjects=1, classes=["anger", "fear"]), out, progress=False)
    (out / "rgbd" / "stale.png").write_bytes(b"old")
    generate(tiny(subjects=1, classes=["fear"]), out, progress=False)
    assert not (out / "rgbd" / "stale.png").exists()
    assert {r["label"] for r in read_rows(out / "rgbd" / "labels.csv")} == {"fear"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "synth"]  # no temp left


# ----------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes_whatever_the_workers(tmp_path, tiny_out):
    out, _ = tiny_out
    again = tmp_path / "again"
    generate(tiny(workers=2), again, progress=False)
    assert file_hashes(again) == file_hashes(out)

    other = tmp_path / "other"
    generate(tiny(seed=8), other, progress=False)
    hashes, base = file_hashes(other), file_hashes(out)
    changed = [k for k in base if k.endswith(".png") and hashes.get(k) != base[k]]
    assert len(changed) > 0.9 * sum(k.endswith(".png") for k in base)


# ----------------------------------------------------------------------------- landmarks


def _dark_centroid(gray: np.ndarray, x: float, y: float, radius: int) -> np.ndarray:
    """Centroid of the darkest pixels (the pupil and iris) in a window around (x, y)."""
    x0, y0 = int(round(x)) - radius, int(round(y)) - radius
    win = gray[y0:y0 + 2 * radius + 1, x0:x0 + 2 * radius + 1].astype(np.float64)
    cut = win.min() + 0.15 * (np.median(win) - win.min())
    ys, xs = np.nonzero(win <= cut)
    return np.array([xs.mean() + x0, ys.mean() + y0])


@pytest.mark.parametrize("pose", [(0.0, 0.0, 0.0), (15.0, -8.0, 10.0), (-18.0, 10.0, -7.0)])
def test_eye_landmarks_sit_on_the_rendered_iris(pose):
    rng = np.random.default_rng(3)
    ident = render.sample_identity(np.random.default_rng(11))
    ident = replace(ident, skin=np.array([0.55, 0.4, 0.32]))  # light skin: irises stand out
    units = render.expression_units("neutral", 0.0, rng, ident)
    scene = replace(render.sample_scene(rng, "normal"), yaw=pose[0], pitch=pose[1],
                    roll=pose[2], exposure=1.0, light_dir=render.light_direction(0.0, 20.0))
    size = 96  # the default image size: the dataset's landmarks must be right there
    mesh = render.build_head(ident, units, render.mesh_spacing(size))
    cameras = [render.main_camera(size, rng),
               render.offset_camera(size, rng, float(scene.head_pos[2]))]
    for cam in cameras:
        frame = render.render_view(cam, scene, ident, mesh, rng, noise=0.0)
        gray = frame.color.astype(np.float64).mean(axis=2)
        lx, ly, rx, ry = frame.eyes
        assert lx < rx
        for x, y in ((lx, ly), (rx, ry)):
            found = _dark_centroid(gray, x, y, radius=3)
            assert np.hypot(*(found - (x, y))) < 1.0, (pose, (x, y), found)


def test_frontal_face_is_symmetric_about_its_eyes():
    rng = np.random.default_rng(5)
    ident = render.sample_identity(np.random.default_rng(2))
    ident = replace(ident, blotch=np.zeros((3, 3)))  # no skin-tone blotches: a symmetric face
    units = render.expression_units("neutral", 0.0, rng, ident)
    scene = replace(render.sample_scene(rng, "normal"), yaw=0.0, pitch=0.0, roll=0.0,
                    head_pos=np.array([0.0, 0.0, 640.0]),
                    light_dir=render.light_direction(0.0, 0.0))
    cam = render.main_camera(97, rng)
    mesh = render.build_head(ident, units, render.mesh_spacing(97))
    frame = render.render_view(cam, scene, ident, mesh, rng, noise=0.0)
    lx, ly, rx, ry = frame.eyes
    assert abs((lx + rx) / 2 - 48) < 0.01 and abs(ly - ry) < 0.01  # head on the optical axis
    gray = frame.color.astype(np.float64).mean(axis=2)
    face = gray[36:75, 30:67]
    # Mirror about the column between the eyes: the frontal, frontally lit face matches itself.
    assert np.mean(np.abs(face - face[:, ::-1])) < 6.0
    assert np.mean(np.abs(face - np.roll(face, 5, axis=1))) > 10.0  # and the check has teeth


# ----------------------------------------------------------------------------- difficulty


def _aligned(image: np.ndarray, row: dict[str, str], size: int = 48) -> np.ndarray:
    """Similarity-warp so the eyes land at fixed points (as the preprocess stage does)."""
    src = np.array([[float(row["lx"]), float(row["ly"])], [float(row["rx"]), float(row["ry"])]])
    dst = np.array([[0.3 * size, 0.36 * size], [0.7 * size, 0.36 * size]])
    matrix, _ = cv2.estimateAffinePartial2D(src, dst)
    if matrix is None:  # two points always fit a similarity; this is only a guard
        matrix = cv2.getRotationMatrix2D((0, 0), 0, 1)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def _features(root: Path) -> dict[str, np.ndarray]:
    """HOG of the aligned grey colour image and of the aligned, face-relative depth map."""
    hog = cv2.HOGDescriptor((48, 48), (16, 16), (8, 8), (8, 8), 9)
    rows = read_rows(root / "rgbd" / "labels.csv")
    color, depth = [], []
    for row in rows:
        gray = read_image(root / "rgbd" / f"{row['id']}_color.png").astype(np.float32).mean(2)
        color.append(hog.compute(_aligned(gray, row).astype(np.uint8)).ravel())
        raw = read_image(root / "rgbd" / f"{row['id']}_depth.png", depth=True)
        raw = raw.astype(np.float32)
        lx, ly = round(float(row["lx"])), round(float(row["ly"]))
        near = raw[max(ly - 6, 0):ly + 12, max(lx - 6, 0):lx + 20]
        near = near[near > 0] if np.count_nonzero(near) >= 5 else raw[raw > 0]
        face_mm = np.median(near)  # distance of this face at eye/nose level
        rel = np.where(raw > 0, np.clip(128 + 2.0 * (raw - face_mm), 0, 255), 255)
        rel = cv2.medianBlur(rel.astype(np.float32), 3)
        depth.append(hog.compute(_aligned(rel, row).astype(np.uint8)).ravel())
    return {"color": np.array(color), "depth": np.array(depth),
            "label": np.array([r["label"] for r in rows]),
            "subject": np.array([r["subject"] for r in rows]),
            "level": np.array([r["light_level"] for r in rows])}


def _accuracy(train_x, train_y, test_x, test_y) -> float:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=500))
    return float(np.mean(model.fit(train_x, train_y).predict(test_x) == test_y))


def test_colour_fails_under_extreme_light_while_depth_holds(tmp_path):
    """Train on normal light; test on held-out people in normal vs extreme light.

    The same seed rendered with ``extreme_light`` 0 and 1 gives the same people, poses and
    expressions, so the comparison isolates the light: colour accuracy must collapse, depth
    accuracy must not move, and both must clearly beat chance (1/8) in normal light.
    """
    base = dict(seed=3, subjects=12, stills_per_subject_class=4, image_size=64,
                clips_per_subject_class=0)
    normal, extreme = tmp_path / "normal", tmp_path / "extreme"
    generate(SyntheticConfig(**base, extreme_light=0.0), normal, progress=False)
    generate(SyntheticConfig(**base, extreme_light=1.0), extreme, progress=False)
    hashes_normal, hashes_extreme = file_hashes(normal), file_hashes(extreme)
    same = {k for k, h in hashes_normal.items() if k.endswith(".png") and hashes_extreme[k] == h}
    assert same == {k for k in hashes_normal if k.endswith("_depth.png")}  # light spares depth
    a, b = _features(normal), _features(extreme)
    assert set(a["level"]) == {"normal"} and set(b["level"]) == {"dark", "bright"}
    test_people = np.isin(a["subject"], ["s00", "s01", "s02", "s03"])
    acc = {}
    with threadpool_limits(1):
        for modality in ("color", "depth"):
            x_train, y_train = a[modality][~test_people], a["label"][~test_people]
            acc[modality] = (
                _accuracy(x_train, y_train, a[modality][test_people], a["label"][test_people]),
                _accuracy(x_train, y_train, b[modality][test_people], b["label"][test_people]),
            )
    (color_normal, color_extreme), (depth_normal, depth_extreme) = acc["color"], acc["depth"]
    assert color_normal > 0.35 and depth_normal > 0.3, acc
    assert color_normal - color_extreme > 0.2, acc
    assert abs(depth_normal - depth_extreme) < 0.03, acc


# ------------------------------------------------------------------ clip onset, staleness


def test_clip_onset_one_keeps_the_apex_at_the_last_frame():
    weights = clip_expression_weights(8, 1.0)
    smoothstep = [(t / 7) ** 2 * (3 - 2 * t / 7) for t in range(8)]
    assert weights == pytest.approx(smoothstep, abs=0.0)
    assert weights[-2] < 1.0 == weights[-1]


def test_a_shorter_onset_reaches_the_apex_early_and_holds_it():
    weights = clip_expression_weights(8, 0.5)
    assert weights[0] == 0.0
    assert weights == sorted(weights)
    ramp = [t / 3.5 for t in range(4)]  # apex at 0.5 x 7 frames
    assert weights[:4] == pytest.approx([s * s * (3 - 2 * s) for s in ramp])
    assert weights[4:] == [1.0] * 4  # frame 4 of 0..7 is past half of the clip


@pytest.mark.parametrize("onset", [0.0, -0.5, 1.5])
def test_an_onset_outside_zero_to_one_is_refused(onset):
    with pytest.raises(ValueError, match="clip_onset"):
        tiny(clip_onset=onset)


def test_clip_onset_changes_the_clip_frames_only(tmp_path, tiny_out):
    out, _ = tiny_out
    held = tmp_path / "held"
    generate(tiny(clip_onset=0.5), held, progress=False)
    before, after = file_hashes(out), file_hashes(held)
    changed = {name for name in before if before[name] != after[name]}
    # Frame 0 is neutral in both; the middle frame of three is at the apex only when held
    # (its eye landmarks move with the expression).
    assert {n for n in changed if n.startswith("rgbd/")} == set()
    assert all(n.endswith(("frame_001.png", "landmarks.csv"))
               for n in changed if n.startswith("clips/"))
    assert any(n.endswith("frame_001.png") for n in changed)


def test_held_frames_share_a_mesh_and_keep_every_byte(tmp_path, monkeypatch):
    """A clip builds one mesh per distinct expression (the held apex once), and the frames
    are the bytes a build per frame gives."""
    from components.data import synthetic

    cfg = tiny(stills_per_subject_class=0, clip_frames=6, clip_onset=0.5)
    builds: list[int] = []
    real_build = render.build_head

    def counted(*args, **kwargs):
        builds.append(1)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(render, "build_head", counted)
    shared = tmp_path / "shared"
    generate(cfg, shared, progress=False)
    clips = 2 * len(CANONICAL_LABELS)
    # Six frames, apex from frame 3 on: frames 0-3 differ, 4 and 5 repeat frame 3.
    assert len(builds) == 4 * clips

    monkeypatch.setattr(synthetic._MeshesByUnits, "get",
                        lambda self, units: real_build(self._ident, units, self._spacing))
    per_frame = tmp_path / "per_frame"
    generate(cfg, per_frame, progress=False)
    assert file_hashes(per_frame) == file_hashes(shared)


def test_a_render_is_current_only_for_its_own_settings(tmp_path, tiny_out):
    out, _ = tiny_out
    assert is_current(tiny(), out)
    assert is_current(tiny(workers=2), out)  # workers decide the speed, not the bytes
    assert not is_current(tiny(clip_onset=0.5), out)
    assert not is_current(tiny(), tmp_path / "missing")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / ".synthetic.json").write_text("{not json")
    assert not is_current(tiny(), broken)


def test_synth_if_stale_renders_once_then_leaves_the_folder_alone(tmp_path):
    from pipelines.cli import main

    values = dict(subjects=1, stills_per_subject_class=1, image_size=48,
                  clips_per_subject_class=1, clip_frames=2, clip_size=32,
                  classes=["happiness", "neutral"], out=str(tmp_path / "data"))
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"synthetic": values}))
    assert main(["data", "synth", "--params", str(params), "--if-stale"]) == 0
    marker = tmp_path / "data" / ".synthetic.json"
    first = marker.stat().st_mtime_ns
    assert main(["data", "synth", "--params", str(params), "--if-stale"]) == 0
    assert marker.stat().st_mtime_ns == first  # current: nothing rendered
    params.write_text(yaml.safe_dump({"synthetic": {**values, "clip_onset": 0.5}}))
    assert main(["data", "synth", "--params", str(params), "--if-stale"]) == 0
    assert marker.stat().st_mtime_ns != first
    assert is_current(SyntheticConfig(**{**values, "clip_onset": 0.5}), tmp_path / "data")
