"""The plain-photo benchmark: each way of sending photos through a model's serving chain, and
its arithmetic (a photo without a found face counts as wrong over all photos)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from benchmarks.serving_photos import MODES, main, markdown, score_model, scores
from components.data.io import write_image


def test_a_photo_without_a_found_face_counts_as_wrong_over_all_photos():
    cell = scores(10, 4, {"accuracy": 0.75, "uar": 0.5})
    assert cell["faces_found"] == 4 and cell["accuracy_of_found"] == 0.75
    assert cell["accuracy_of_all"] == pytest.approx(0.3)  # 3 right of 10 photos
    none = scores(5, 0, {"accuracy": float("nan"), "uar": float("nan")})
    assert none["accuracy_of_found"] is None and none["accuracy_of_all"] == 0.0


def test_each_way_of_sending_photos_finds_its_own_faces(trained, photo, tmp_path):
    """Given eyes and --crop score every photo; detection finds no face in noise."""
    noise = write_image(tmp_path / "noise.png", np.random.default_rng(0).integers(
        0, 256, (240, 320, 3), dtype=np.uint8))
    cx, cy = photo.centre
    eyes = {"color": [[cx - 40.0, cy - 30.0, cx + 40.0, cy - 30.0]]}
    ws = trained.workspace
    classes = json.loads((ws.task_dir / "meta.json").read_text())["classes"]
    stills = pd.DataFrame({
        "color": [str(photo.color), str(noise)], "depth": [str(photo.depth)] * 2,
        "label": classes[:2],
        "light_level": ["normal", "dark"],
        "landmarks": [json.dumps(eyes), json.dumps({"color": [[100.0, 100.0, 140.0, 100.0]]})],
    })
    result = score_model(str(ws.out("baseline_cnn")), ws.data, stills, {})
    assert result["arch"] == "baseline_cnn" and result["version"] is None
    assert set(result["modes"]) == set(MODES)
    found = {mode: result["modes"][mode]["all"]["faces_found"] for mode in MODES}
    assert found == {"eyes given": 2, "plain photo": 1, "face crop": 2}
    plain = result["modes"]["plain photo"]
    assert plain["normal"]["faces_found"] == 1 and plain["dark"]["faces_found"] == 0
    assert plain["dark"]["accuracy_of_found"] is None
    for mode in MODES:
        cell = result["modes"][mode]["all"]
        assert cell["photos"] == 2 and cell["accuracy_of_all"] <= (cell["accuracy_of_found"]
                                                                    or 0.0)
    rgbd = score_model(str(ws.out("fusion_twostream")), ws.data, stills, {})  # sent the depth
    assert {mode: rgbd["modes"][mode]["all"]["faces_found"] for mode in MODES} == found
    payload = {"commit": "abc", "machine": {"cpu": "cpu", "cpu_count": 2, "torch": "t"},
               "photos": 2, "models": [result]}
    table = [line for line in markdown("cmd", payload) if line.startswith("| ")]
    assert len(table) == 1 + len(MODES) * 3  # header + (all, normal, dark) per way


def test_a_missing_manifest_is_one_error_line(tmp_path, capsys):
    assert main(["--manifest", str(tmp_path / "none.parquet"), "--name", "never_written"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "no validated manifest" in err[0]
