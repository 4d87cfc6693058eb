"""Behaviour of the validation stage on tiny real datasets (real PNGs, real GX)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.data.io import write_image
from components.data.manifest import build_manifest, read_manifest
from components.errors import ConfigError, ValidationFailed
from components.validation import validate_manifest
from components.validation.config import validate_config
from tests.validation.conftest import noise


def _run(manifest, cfg, out: Path, **kwargs):
    return validate_manifest(manifest, cfg, out, progress=False, **kwargs)


def test_clean_set_passes_and_writes_all_outputs(dataset, config, tmp_path):
    dataset.add_clean()
    manifest = dataset.manifest()
    out = tmp_path / "out"
    result = _run(manifest, config(), out)
    assert result.passed and not result.errors
    for name in ("manifest.parquet", "report.json", "summary.md", "metrics.json"):
        assert (out / name).is_file(), name
    written = read_manifest(out / "manifest.parquet")
    assert written["id"].tolist() == manifest["id"].tolist()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_samples"] == 27 and metrics["n_excluded"] == 0
    assert metrics["n_train"] == 15 and metrics["n_val"] == 6 and metrics["n_test"] == 6
    assert metrics["n_errors"] == 0 and metrics["n_duplicate_groups"] == 0
    report = json.loads((out / "report.json").read_text())
    assert report["modalities"]["color"] == [{"shape": "16x16x3", "count": 27}]
    assert report["gx"]["facts"]["evaluated"] > 0 and report["gx"]["facts"]["success"]
    assert "# Validation PASSED" in (out / "summary.md").read_text()


def test_truncated_file_fails_naming_the_file_and_report_is_still_written(
    dataset, config, tmp_path
):
    dataset.add_clean()
    broken = Path(dataset.rows[3]["color"])
    broken.write_bytes(broken.read_bytes()[:60])
    out = tmp_path / "out"
    stale = out / "manifest.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"from an earlier run")
    with pytest.raises(ValidationFailed) as caught:
        _run(dataset.manifest(), config(), out)
    message = str(caught.value)
    assert broken.name in message and "report.json" in message and "\n" not in message
    report = json.loads((out / "report.json").read_text())
    decode = [f for f in report["findings"] if f["check"] == "decode"]
    assert decode and decode[0]["count"] == 1 and decode[0]["examples"] == ["s0003"]
    assert not stale.exists(), "a failing run must not leave a validated manifest behind"
    assert broken.exists(), "validation never deletes data files"


def test_failure_can_be_returned_instead_of_raised(dataset, config, tmp_path):
    dataset.add_clean()
    Path(dataset.rows[0]["color"]).write_bytes(b"")
    result = _run(dataset.manifest(), config(), tmp_path / "out", raise_on_error=False)
    assert not result.passed
    assert [f.check for f in result.errors] == ["decode"]
    assert "empty file" in result.errors[0].details[0]


@pytest.mark.parametrize("problem", ["missing_ref", "missing_file", "other_size", "8bit"])
def test_rgbd_rows_need_a_16bit_depth_map_of_the_colour_size(dataset, config, tmp_path,
                                                             problem):
    rng = np.random.default_rng(0)
    for split, count in {"train": 5, "val": 1, "test": 1}.items():
        for label in ("anger", "happiness"):
            for _ in range(count):
                depth = rng.integers(400, 1500, size=(16, 16), dtype=np.uint16)
                dataset.add(split, label, depth=depth, source="rgbd")
    row = dataset.rows[2]
    expected = {"missing_ref": "depth_missing", "missing_file": "decode",
                "other_size": "depth_size", "8bit": "depth_dtype"}[problem]
    if problem == "missing_ref":
        del row["depth"]
    elif problem == "missing_file":
        Path(row["depth"]).unlink()
    elif problem == "other_size":
        write_image(row["depth"], np.full((12, 20), 900, dtype=np.uint16))
    else:
        write_image(row["depth"], np.full((16, 16), 90, dtype=np.uint8))
    with pytest.raises(ValidationFailed, match=expected):
        _run(dataset.manifest(), config(), tmp_path / "out")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    failed = {f["check"]: f for f in report["findings"] if f["severity"] == "error"}
    assert set(failed) == {expected}
    assert failed[expected]["examples"] == [row["id"]]


def test_blank_images_are_found_and_excluded_per_switch(dataset, config, tmp_path):
    dataset.add_clean()
    black = np.zeros((16, 16, 3), np.uint8)
    near_constant = np.full((16, 16, 3), 120, np.uint8)
    near_constant[0, :3] = 121
    dataset.add("train", "anger", black, ident="black")
    dataset.add("val", "sadness", near_constant, ident="flat")
    manifest = dataset.manifest()

    kept = _run(manifest, config(), tmp_path / "a")
    assert kept.report["blank"]["ids"] == ["black", "flat"]
    assert {"black", "flat"}.isdisjoint(kept.manifest["id"])
    assert dict(zip(kept.excluded["id"], kept.excluded["reason"], strict=True)) == {
        "black": "blank", "flat": "blank"}
    assert any(f.check == "blank" and f.count == 2 for f in kept.findings)

    kept_all = _run(manifest, config(exclude_blank=False), tmp_path / "b")
    assert kept_all.report["blank"]["n"] == 2
    assert {"black", "flat"} <= set(kept_all.manifest["id"])


def test_too_few_training_samples_per_class_fails(dataset, config, tmp_path):
    dataset.add_clean()
    for _ in range(3):
        dataset.add("train", "fear")
    with pytest.raises(ValidationFailed, match="min_samples_train.*fear"):
        _run(dataset.manifest(), config(), tmp_path / "out")
    result = _run(dataset.manifest(), config(min_samples_per_class=3), tmp_path / "ok")
    assert result.passed
    # fear has no val/test rows: a warning, not an error
    assert {f.check for f in result.findings} >= {"min_samples_val", "min_samples_test"}


def test_exclusions_that_empty_a_training_class_fail_the_stage(dataset, config, tmp_path):
    dataset.add_clean()
    for _ in range(5):
        dataset.add("train", "fear", np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValidationFailed, match="min_samples_train"):
        _run(dataset.manifest(), config(), tmp_path / "out")


def test_bad_labels_splits_and_ids_fail_through_the_manifest_suite(dataset, config, tmp_path):
    dataset.add_clean()
    manifest = dataset.manifest()
    manifest.loc[0, "label"] = "grumpy"
    manifest.loc[1, "split"] = "holdout"
    manifest.loc[2, "id"] = manifest.loc[3, "id"]
    result = _run(manifest, config(), tmp_path / "out", raise_on_error=False)
    errors = {f.check: f for f in result.errors}
    assert {"label", "split", "id"} <= set(errors)
    assert "s0000: grumpy" in errors["label"].details
    assert "s0001: holdout" in errors["split"].details


def test_missing_manifest_column_is_a_schema_error(dataset, config, tmp_path):
    dataset.add_clean()
    manifest = dataset.manifest().drop(columns=["depth"])
    with pytest.raises(ValidationFailed, match="schema.*'depth' is missing"):
        _run(manifest, config(), tmp_path / "out")
    assert (tmp_path / "out" / "report.json").is_file()


def test_clip_frame_counts_must_be_in_range(tmp_path, config):
    rows = []
    for index, (label, n_frames) in enumerate([("anger", 5)] * 5 + [("anger", 2)]):
        folder = tmp_path / f"clip{index}"
        for frame in range(n_frames):
            write_image(folder / f"{frame}.png", noise(index * 100 + frame, (8, 8, 3)))
        rows.append({"id": f"c{index}", "source": "clips", "split": "train", "label": label,
                     "frames": str(folder), "n_frames": n_frames})
    manifest = build_manifest(rows)
    result = _run(manifest, config(), tmp_path / "out", raise_on_error=False)
    errors = {f.check: f for f in result.errors}
    assert set(errors) == {"frame_count"}
    assert errors["frame_count"].examples == ["c5"]
    assert result.facts["n_frames"].tolist() == [5, 5, 5, 5, 5, 2]
    assert _run(manifest, config(frames_range=[2, 10]), tmp_path / "ok").passed


def test_mixed_sizes_warn_by_default_and_fail_when_params_demand(dataset, config, tmp_path):
    dataset.add_clean()
    dataset.add("train", "anger", noise(5, (20, 24, 3)))
    manifest = dataset.manifest()
    result = _run(manifest, config(), tmp_path / "a")
    assert result.passed
    sizes = {s["shape"]: s["count"] for s in result.report["modalities"]["color"]}
    assert sizes == {"16x16x3": 27, "24x20x3": 1}
    with pytest.raises(ValidationFailed, match="inconsistent_size"):
        _run(manifest, config(require_consistent_size=True), tmp_path / "b")
    with pytest.raises(ValidationFailed, match="image_size"):
        _run(manifest, config(max_image_side=20), tmp_path / "c")


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="frames_range"):
        validate_config({"frames_range": [10, 2]})
    with pytest.raises(ConfigError, match="unknown key 'exclude_everything'"):
        validate_config({"exclude_everything": True})
    assert validate_config({}).exclude_leakage is True


def test_report_lists_every_excluded_row(dataset, config, tmp_path):
    dataset.add_clean()
    dataset.add("test", "anger", np.zeros((16, 16, 3), np.uint8), ident="dark")
    _run(dataset.manifest(), config(), tmp_path / "out")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["excluded"]["rows"] == [
        {"id": "dark", "split": "test", "label": "anger", "reason": "blank"}]
    assert report["excluded"]["by_reason"] == {"blank": 1}
    assert pd.read_parquet(tmp_path / "out" / "manifest.parquet")["id"].ne("dark").all()
