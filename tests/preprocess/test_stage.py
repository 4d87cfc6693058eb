"""The whole stage on a tiny mixed manifest: every file, shape, dtype and split; determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from components.data.io import write_image
from components.data.manifest import build_manifest, write_manifest
from pipelines.preprocess import main, run_preprocess, split_speed
from tests.preprocess.faces import blob_face, marker_depth

PARAMS = {"size": 32, "clip_size": 24, "clip_frames": 4, "workers": 1,
          "contact_sheet_examples": 3}


@pytest.fixture
def manifest_path(tmp_path):
    """FER-like grey crops in one .npy store, RGB-D stills with landmarks, two occluded test
    twins at 25 % and a clip folder, across train/val/test."""
    rng = np.random.default_rng(0)
    store = tmp_path / "crops.npy"
    np.save(store, rng.integers(0, 255, (6, 48, 48), dtype=np.uint8))
    rows = []
    for i, split in enumerate(["train", "train", "val", "test", "test", "train"]):
        rows.append({"id": f"fer{i}", "source": "fer2013", "split": split,
                     "label": ["anger", "happiness", "sadness"][i % 3],
                     "color": f"{store}#{i}", "width": 48, "height": 48, "channels": 1})
    for i, split in enumerate(["train", "val", "test"]):
        left, right = (30.0 + i, 40.0), (66.0 + i, 42.0)
        colour = blob_face(96, 96, left, right)
        rows.append({
            "id": f"rgbd{i}", "source": "rgbd", "split": split, "label": "happiness",
            "color": str(write_image(tmp_path / f"rgbd{i}_color.png", colour)),
            "depth": str(write_image(tmp_path / f"rgbd{i}_depth.png",
                                     marker_depth(96, 96, [left, right]))),
            "width": 96, "height": 96, "channels": 3,
            "landmarks": json.dumps({"color": [[*left, *right]]}),
        })
    for i, twin in enumerate(["fer3", "rgbd2"]):
        occluded = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
        rows.append({"id": f"occ{i}", "source": "augment", "split": "test", "label": "anger",
                     "color": str(write_image(tmp_path / f"occ{i}.png", occluded)),
                     "channels": 3, "occluded": True, "twin_of": twin,
                     "occluder": "rectangle", "occlusion_level": 0.25})
    clip = tmp_path / "clip0"
    for t in range(5):
        write_image(clip / f"{t}.png", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    rows.append({"id": "clip0", "source": "clips", "split": "train", "label": "sadness",
                 "frames": str(clip), "n_frames": 5, "channels": 3})
    for row in rows:
        row.setdefault("occluded", False)
    return write_manifest(build_manifest(rows), tmp_path / "manifest.parquet")


def test_stage_writes_every_output_with_the_contract_shapes(manifest_path, tmp_path):
    out = tmp_path / "out"
    report = run_preprocess(PARAMS, manifest_path, out, progress=False)
    image = out / "image"
    assert sorted(p.name for p in image.iterdir() if p.is_dir()) == [
        "test", "test_occ25", "train", "val"]
    counts = {"train": 4, "val": 2, "test": 3, "test_occ25": 2}
    for split, n in counts.items():
        folder = image / split
        color = np.load(folder / "color.npy", mmap_mode="r")
        depth = np.load(folder / "depth.npy", mmap_mode="r")
        assert color.shape == (n, 3, 32, 32) and color.dtype == np.float16
        assert depth.shape == (n, 1, 32, 32) and depth.dtype == np.float16
        assert 0.0 <= float(color.min()) and float(color.max()) <= 1.0
        assert np.load(folder / "y.npy").dtype == np.int64
        assert np.load(folder / "ids.npy").dtype.kind == "U"
        assert np.load(folder / "occluded.npy").dtype == bool
        assert np.load(folder / "fallback.npy").shape == (n,)
        assert not (folder / "color2d.npy").exists()
    assert np.load(image / "test_occ25" / "occluded.npy").all()
    assert list(np.load(image / "train" / "ids.npy")) == ["fer0", "fer1", "fer5", "rgbd0"]
    meta = json.loads((image / "meta.json").read_text())
    assert meta["classes"] == ["anger", "happiness", "sadness"]
    assert list(np.load(image / "train" / "y.npy")) == [0, 1, 2, 1]
    assert meta["modalities"] == ["color", "depth"]
    frames = np.load(out / "video" / "train" / "frames.npy", mmap_mode="r")
    assert frames.shape == (1, 4, 3, 24, 24) and frames.dtype == np.float16
    assert report["tasks"]["image"]["test_occ25"]["count"] == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["image.train.count"] == 4
    assert (out / "report.json").exists()
    assert (out / "contact_sheet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_inputs_give_byte_identical_arrays_with_any_worker_count(manifest_path, tmp_path):
    run_preprocess(PARAMS, manifest_path, tmp_path / "a", progress=False)
    run_preprocess({**PARAMS, "workers": 2}, manifest_path, tmp_path / "b", progress=False)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.npy"))
    assert len(files) > 20
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_cli_reads_its_params_section_and_rejects_bad_values(manifest_path, tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"preprocess": {**PARAMS, "face_policy": "skip"}}))
    argv = ["--params", str(params), "--manifest", str(manifest_path), "--out",
            str(tmp_path / "cli")]
    assert main(argv) == 2
    assert "face_policy" in capsys.readouterr().err
    params.write_text(yaml.safe_dump({"preprocess": PARAMS}))
    assert main(argv) == 0
    assert (tmp_path / "cli" / "image" / "train" / "color.npy").exists()


def test_flagged_test_rows_stay_in_test_and_leave_test_dedup(tmp_path) -> None:
    """Validation's keep_official_test flags test rows instead of dropping them: `test` keeps
    the official split whole, `test_dedup` is the same arrays without the flagged rows."""
    rng = np.random.default_rng(1)
    store = tmp_path / "crops.npy"
    np.save(store, rng.integers(0, 255, (5, 48, 48), dtype=np.uint8))
    rows = [{"id": f"fer{i}", "source": "fer2013", "split": split, "label": "anger",
             "color": f"{store}#{i}", "width": 48, "height": 48, "channels": 1}
            for i, split in enumerate(["train", "val", "test", "test", "test"])]
    frame = build_manifest(rows)
    frame["excluded_reason"] = [None, None, None, "leakage", None]
    path = write_manifest(frame, tmp_path / "manifest.parquet")
    report = run_preprocess(PARAMS, path, tmp_path / "out")
    task = tmp_path / "out" / "image"
    assert list(np.load(task / "test" / "ids.npy")) == ["fer2", "fer3", "fer4"]
    assert list(np.load(task / "test_dedup" / "ids.npy")) == ["fer2", "fer4"]
    full, dedup = np.load(task / "test" / "color.npy"), np.load(task / "test_dedup" / "color.npy")
    assert np.array_equal(dedup, full[[0, 2]])
    entry = report["tasks"]["image"]["test_dedup"]
    assert entry["kept"] == 2 and entry["dropped"] == 1
    # the stage's log line names where a derived split came from, not a missing rate
    assert split_speed(entry) == "rows of test, not re-aligned"
    assert split_speed(report["tasks"]["image"]["test"]).endswith(" faces/s")
