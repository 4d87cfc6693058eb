"""The demo's last stage: held-out photos, one per class, beside their true labels."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from components.errors import DataError
from components.serving.examples import (
    ExampleConfig,
    example_request,
    examples_markdown,
    eyes_of,
    has_eyes,
    pick_examples,
)
from pipelines import predict as predict_module


def _manifest(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame([{"id": i, "split": s, "label": label, "light_level": light,
                          "color": f"{i}.png", "frames": None, "landmarks": None}
                         for i, s, label, light in rows])


def test_one_normal_light_test_still_per_class_by_sorted_id() -> None:
    frame = _manifest([("b2", "test", "anger", "normal"), ("b1", "test", "anger", "normal"),
                       ("a0", "test", "anger", "dark"), ("c1", "train", "fear", "normal"),
                       ("c2", "test", "fear", "normal"), ("c0", "test", "fear", "bright")])
    chosen = pick_examples(frame, ExampleConfig())
    assert list(chosen["id"]) == ["b1", "c2"]
    assert list(pick_examples(frame, ExampleConfig(light_level=None))["id"]) == ["a0", "c0"]
    assert len(pick_examples(frame, ExampleConfig(per_class=2))) == 3
    with pytest.raises(DataError, match="no stills in split 'val'"):
        pick_examples(frame, ExampleConfig(split="val"))


def test_eyes_come_from_the_colour_landmarks_and_the_table_counts_right_answers() -> None:
    cell = json.dumps({"color": [[31.5, 35.0, 49.5, 32.25]], "color2d": [[1, 2, 3, 4]]})
    assert eyes_of(cell) == "31.5,35,49.5,32.25"
    assert eyes_of(None) is None and eyes_of(json.dumps({"color": []})) is None
    records = [{"photo": "x/a.png", "true": "anger", "predicted": "anger", "probability": 0.9,
                "low_confidence": False},
               {"photo": "x/b.png", "true": "fear", "predicted": "surprise",
                "probability": 0.5, "low_confidence": False},
               {"photo": "x/c.png", "true": "sadness", "predicted": None, "probability": None,
                "low_confidence": None}]
    table = examples_markdown(records, "models:/ferops-image@champion")
    assert "1 of 3 right" in table
    assert "| b.png | fear | surprise ✗ | 0.50 |" in table
    assert "| c.png | sadness | no face |" in table


def test_photos_with_eye_positions_are_also_shown_as_plain_photos() -> None:
    cell = json.dumps({"color": [[31.5, 35.0, 49.5, 32.25]]})
    rows = pd.DataFrame({"color": ["a.png"], "label": ["anger"], "landmarks": [cell]})
    assert has_eyes(rows) and not has_eyes(rows.assign(landmarks=[None]))
    assert not has_eyes(rows.drop(columns="landmarks"))
    records = [{"photo": "x/a.png", "true": "anger", "predicted": "anger", "probability": 0.9,
                "low_confidence": False, "plain_predicted": "fear", "plain_probability": 0.6,
                "plain_low_confidence": False},
               {"photo": "x/b.png", "true": "fear", "predicted": "fear", "probability": 0.8,
                "low_confidence": False, "plain_predicted": None, "plain_probability": None,
                "plain_low_confidence": None}]
    table = examples_markdown(records, "m")
    assert "with the recorded eye centres (the training chain's alignment): 2 of 2 right" in table
    assert "as plain photos" in table and "0 of 2 right, 1 without a found face" in table
    assert "| a.png | anger | anger | 0.90 | fear ✗ | 0.60 |" in table
    assert "| b.png | fear | fear | 0.80 | no face |  |" in table


def test_a_plain_request_leaves_the_eye_positions_out(photo) -> None:
    cell = json.dumps({"color": [[31.5, 35.0, 49.5, 32.25]]})
    rows = pd.DataFrame({"color": [str(photo.color)], "label": ["anger"], "landmarks": [cell]})
    assert list(example_request(rows, ("color",))["eyes"]) == ["31.5,35,49.5,32.25"]
    assert list(example_request(rows, ("color",), eyes=False)["eyes"]) == [None]


def test_examples_flag_scores_the_manifest_photos_with_the_configured_model(
        store, photo, tmp_path, capsys) -> None:
    uri = store.serving_uri("baseline_cnn")
    manifest = tmp_path / "manifest.parquet"
    frame = _manifest([("p1", "test", "anger", "normal"), ("p2", "test", "happiness", "normal")])
    frame["color"] = str(photo.color)
    frame.to_parquet(manifest)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"predict": {"model": uri, "examples": {
        "manifest": str(manifest)}}}))
    out = tmp_path / "examples.json"
    assert predict_module.main(["--examples", "--params", str(params), "--out", str(out)]) == 0
    records = json.loads(out.read_text())
    assert [r["true"] for r in records] == ["anger", "happiness"]
    assert all(r["predicted"] is not None and 0 < r["probability"] <= 1 for r in records)
    assert records[0]["predicted"] == records[1]["predicted"]  # the same photo twice
    table = out.with_suffix(".md").read_text()
    assert table in capsys.readouterr().out and " of 2 right" in table
    assert "plain_predicted" not in records[0]  # no eye positions: one way only

    cx, cy = photo.centre  # with eye positions the photos are also scored as plain photos
    frame["landmarks"] = json.dumps({"color": [[cx - 40.0, cy - 30.0, cx + 40.0, cy - 30.0]]})
    frame.to_parquet(manifest)
    assert predict_module.main(["--examples", "--params", str(params), "--out", str(out)]) == 0
    records = json.loads(out.read_text())
    assert all(r["plain_predicted"] is not None for r in records)  # the drawn face is found
    assert "as plain photos" in out.with_suffix(".md").read_text()
