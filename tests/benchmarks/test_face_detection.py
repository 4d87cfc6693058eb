"""The detector benchmark's finder table: the retries are measured, rows complete."""

from __future__ import annotations

import cv2
import numpy as np

from benchmarks.face_detection import ROLLS, finder_summary, measure_finder, turn
from tests.preprocess.faces import drawn_photo


def _faces() -> np.ndarray:
    """Two 48x48 grey crops of the drawn cartoon face (one the cascade finds upright)."""
    crops = []
    for seed in (0, 1):
        photo, (cx, cy) = drawn_photo(seed=seed)
        grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
        crop = grey[cy - 140:cy + 140, cx - 140:cx + 140]
        crops.append(cv2.resize(crop, (48, 48), interpolation=cv2.INTER_AREA))
    return np.stack(crops)


def test_turn_keeps_the_crop_size_and_a_zero_turn_keeps_the_pixels():
    face = _faces()[0]
    assert turn(face, 15.0).shape == face.shape
    np.testing.assert_array_equal(turn(face, 0.0), face)


def test_finder_table_has_both_searches_for_every_roll_and_the_retries_never_lose_a_face():
    table = measure_finder(_faces(), seed=0)
    assert set(table["face_roll"]) == set(ROLLS)
    assert set(table["search"]) == {"upright only", "with retries"}
    upright = table[table["search"] == "upright only"].reset_index(drop=True)
    retried = table[table["search"] == "with retries"].reset_index(drop=True)
    # The retries run only when the upright search finds nothing: never fewer faces found.
    assert (retried["recall"] >= upright["recall"]).all()
    assert (table["ms_per_empty_scene"] > 0).all()
    summary = finder_summary(table)
    assert len(summary) == 2 * len(ROLLS)


def test_a_missing_csv_is_one_error_line(tmp_path, monkeypatch, capsys):
    from benchmarks.face_detection import main

    monkeypatch.setattr("sys.argv", ["face_detection.py", "--csv", str(tmp_path / "none.csv")])
    assert main() == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "not found" in err[0]
