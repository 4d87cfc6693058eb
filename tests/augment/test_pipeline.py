"""``python -m pipelines.augment`` on a tiny validated manifest: outputs, CLI and user errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from components.data.io import read_image
from components.data.manifest import read_manifest, write_manifest
from pipelines import augment as stage
from tests.augment.data import rgbd_manifest, still_manifest, tree_hashes

AUGMENT = {
    "seed": 3,
    "area_range": [0.1, 0.4],
    "kinds": {
        "coarse_dropout": 1,
        "erasing": 1,
        "grid_dropout": 1,
        "eyes_band": 1,
        "lower_face": 1,
        "one_eye": 1,
        "mouth": 1,
    },
    "fills": {"black": 1, "noise": 1, "color": 1, "texture": 1},
    "test_levels": [0.1, 0.25, 0.4],
    "workers": 1,
}


@pytest.fixture()
def validated(tmp_path: Path) -> Path:
    frame = pd.concat(
        [still_manifest(tmp_path / "data", n=12), rgbd_manifest(tmp_path / "data", n=8)],
        ignore_index=True,
    )
    return write_manifest(frame, tmp_path / "validate" / "manifest.parquet")


def _params(tmp_path: Path, section: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"augment": section}))
    return path


def test_stage_writes_manifest_images_report_and_metrics(tmp_path: Path, validated: Path) -> None:
    raw_before = tree_hashes(tmp_path / "data")
    out = tmp_path / "augment"
    result = stage.run_augment(AUGMENT, validated, out, progress=False)
    manifest = read_manifest(out / "manifest.parquet")
    assert len(manifest) == len(result.manifest)
    source = read_manifest(validated)
    n_trainval = int(source["split"].isin(["train", "val"]).sum())
    n_test = int((source["split"] == "test").sum())
    assert len(manifest) == len(source) + n_trainval + 3 * n_test
    assert manifest["occluded"].dtype == "boolean"
    for ref in manifest.loc[manifest["occluded"], "color"]:
        assert Path(ref).is_relative_to(out / "images") and read_image(ref).shape[:2] in {
            (48, 48),
            (64, 64),
        }
    report = json.loads((out / "report.json").read_text())
    assert report["splits"]["train"]["clean"] == report["splits"]["train"]["occluded"] > 0
    assert report["splits"]["val"]["clean"] == report["splits"]["val"]["occluded"] > 0
    assert report["splits"]["test"]["occluded"] == 0
    assert set(report["test_levels"]) == {"test_occ10", "test_occ25", "test_occ40"}
    assert all(v["abs_error_max"] <= 0.02 for v in report["test_levels"].values())
    assert "evaluation only" in report["note"]
    assert sum(k["count"] for k in report["kinds"].values()) == n_trainval
    metrics = json.loads((out / "metrics.json").read_text())
    assert all(isinstance(v, int | float) for v in metrics.values())
    assert metrics["train_clean"] == metrics["train_occluded"]
    assert metrics["test_occ25_count"] == n_test
    assert tree_hashes(tmp_path / "data") == raw_before  # raw data untouched


def test_cli_runs_from_params_file(tmp_path: Path, validated: Path) -> None:
    params = _params(tmp_path, AUGMENT)
    out = tmp_path / "cli_out"
    argv = ["--params", str(params), "--manifest", str(validated), "--out", str(out)]
    assert stage.main(argv) == 0
    assert (out / "manifest.parquet").exists() and (out / "metrics.json").exists()


def test_cli_reports_a_misspelled_kind_in_one_line(
    tmp_path: Path, validated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = _params(tmp_path, {**AUGMENT, "kinds": {"sunglases": 1}})
    argv = ["--params", str(params), "--manifest", str(validated), "--out", str(tmp_path / "o")]
    assert stage.main(argv) == 2
    err = capsys.readouterr().err
    assert "sunglases" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "manifest.parquet").exists()


def test_refuses_to_write_into_raw_data(
    tmp_path: Path, validated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    params = _params(tmp_path, AUGMENT)
    argv = ["--params", str(params), "--manifest", str(validated), "--out", "data/augment"]
    assert stage.main(argv) == 2
    assert not (tmp_path / "data" / "augment").exists()
