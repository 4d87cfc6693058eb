"""The 1:1 mix per split, the occluded test set, and reproducibility of the whole output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.augment import augment_config, augment_manifest, iter_occluded_test
from components.augment.geometry import canonical_eyes, face_box
from components.data.io import read_frames, read_image
from components.errors import ConfigError, DataError
from tests.augment.data import clip_manifest, rgbd_manifest, still_manifest, tree_hashes

PARAMS = {"seed": 3, "test_levels": [0.1, 0.25, 0.4], "workers": 1}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    root = tmp_path_factory.mktemp("mix")
    frame = pd.concat(
        [still_manifest(root / "raw", n=12), rgbd_manifest(root / "raw", n=4)], ignore_index=True
    )
    result = augment_manifest(frame, augment_config(PARAMS), root / "out", progress=False)
    return frame, result.manifest, root / "out"


def test_train_and_val_are_exactly_one_to_one_and_twins_keep_their_split(mixed) -> None:
    source, out, _ = mixed
    for split in ("train", "val"):
        part = out[(out["split"] == split) & out["occlusion_level"].isna()]
        expected = (source["split"] == split).sum()
        assert (~part["occluded"]).sum() == part["occluded"].sum() == expected
    twins = out[out["occluded"]]
    split_of = dict(zip(source["id"], source["split"], strict=True))
    label_of = dict(zip(source["id"], source["label"], strict=True))
    assert all(split_of[t] == s for t, s in zip(twins["twin_of"], twins["split"], strict=True))
    assert all(label_of[t] == lab for t, lab in zip(twins["twin_of"], twins["label"], strict=True))
    plain = twins[twins["occlusion_level"].isna()]
    assert set(plain["id"]) == {f"{i}__occ" for i in source.loc[source["split"] != "test", "id"]}
    assert plain["occlusion_area"].between(0.08, 0.42).all()
    clean = out[~out["occluded"]].reset_index(drop=True)
    pd.testing.assert_series_equal(clean["id"], source["id"], check_names=False)
    assert clean["occlusion_area"].eq(0).all() and clean["twin_of"].isna().all()


def test_occluded_test_set_has_each_level_with_measured_area_near_it(mixed) -> None:
    source, out, _ = mixed
    tests = source.loc[source["split"] == "test", "id"]
    levels = dict(iter_occluded_test(out))
    assert sorted(levels) == [10, 25, 40]
    for pct, rows in levels.items():
        assert set(rows["id"]) == {f"{i}__occ{pct}" for i in tests}
        assert (rows["split"] == "test").all() and rows["occluded"].all()
        assert np.allclose(rows["occlusion_area"].astype(float), pct / 100, atol=0.02)
    # the clean test rows stay as they were
    clean_test = out[(out["split"] == "test") & ~out["occluded"]]
    assert list(clean_test["color"]) == list(source.loc[source["split"] == "test", "color"])


def test_written_twin_differs_from_its_source_only_on_the_face(mixed) -> None:
    source, out, folder = mixed
    row = out[out["id"] == "img/0__occ"].iloc[0]
    assert Path(row["color"]).parent == folder / "images" / "train"
    before, after = read_image(source.iloc[0]["color"]), read_image(row["color"])
    hit = (before != after).any(axis=2)
    box = face_box(canonical_eyes(48, 48), before.shape)
    assert hit[box.y0 : box.y1, box.x0 : box.x1].mean() == pytest.approx(
        row["occlusion_area"], abs=0.02
    )
    outside = hit.copy()
    outside[box.y0 : box.y1, box.x0 : box.x1] = False
    assert not outside.any()
    rgbd = out[out["id"] == "rgbd0__occ"].iloc[0]
    depth = read_image(rgbd["depth"], depth=True)
    assert depth.dtype == np.uint16 and rgbd["color2d"].endswith("_2d.png")


def _run(root: Path, frame: pd.DataFrame, **params) -> dict[str, str]:
    cfg = augment_config({**PARAMS, **params})
    result = augment_manifest(frame, cfg, root, progress=False, serial_below=0)
    result.manifest.to_parquet(root / "manifest.parquet", index=False)
    return tree_hashes(root)


def test_same_seed_is_byte_identical_across_worker_counts_and_other_seed_differs(
    tmp_path: Path,
) -> None:
    frame = pd.concat(
        [still_manifest(tmp_path / "raw", n=8), clip_manifest(tmp_path / "raw", n=4)],
        ignore_index=True,
    )
    # Same folder each time: the manifest records the image paths.
    serial = _run(tmp_path / "out", frame, workers=1)
    pooled = _run(tmp_path / "out", frame, workers=2)
    assert serial == pooled and len(serial) > 20
    other = _run(tmp_path / "out", frame, workers=1, seed=4)
    assert set(other) == set(serial)
    differing = [name for name in serial if serial[name] != other[name]]
    assert len(differing) > len(serial) // 2


def test_clip_twins_are_frame_folders_of_the_same_length(tmp_path: Path) -> None:
    frame = clip_manifest(tmp_path / "raw", n=4, frames=5)
    out = augment_manifest(frame, augment_config(PARAMS), tmp_path / "out", progress=False)
    twin = out.manifest[out.manifest["id"] == "clip0__occ"].iloc[0]
    assert Path(twin["frames"]).is_dir() and len(read_frames(twin["frames"])) == 5
    assert twin["n_frames"] == 5 and twin["occluder"] in out.report["kinds"]


def test_reaugmenting_an_augmented_manifest_is_refused(mixed, tmp_path: Path) -> None:
    _, out, _ = mixed
    with pytest.raises(DataError, match="already holds occluded rows"):
        augment_manifest(out, augment_config(PARAMS), tmp_path, progress=False)


def test_clean_only_training_builds_no_twins_but_the_same_occluded_test_set(
    mixed, tmp_path: Path
) -> None:
    source, out, _ = mixed
    clean_only = augment_manifest(source, augment_config({**PARAMS, "twins": False}),
                                  tmp_path / "clean", progress=False).manifest
    assert not clean_only.loc[clean_only["split"] != "test", "occluded"].any()
    assert len(clean_only[clean_only["occlusion_level"].isna()]) == len(source)
    # The occluded test rows are the mix's own, byte for byte (same seed, same ids).
    for (pct, rows), (pct_mix, rows_mix) in zip(iter_occluded_test(clean_only),
                                                iter_occluded_test(out), strict=True):
        assert pct == pct_mix and list(rows["id"]) == list(rows_mix["id"])
        assert list(rows["content_hash"]) == list(rows_mix["content_hash"])


def test_twins_switch_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match="augment.twins"):
        augment_config({**PARAMS, "twins": "no"})
