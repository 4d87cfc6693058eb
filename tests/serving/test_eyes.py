"""Given eye centres: the served chain aligns a face exactly as the preprocess stage aligns a
sample with landmarks, skips detection, and refuses malformed eyes with a clear message."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from components.data.io import read_image
from components.data.sources.rgbd_folder import scan_rgbd_folder
from components.data.synthetic import SyntheticConfig, generate
from components.models import ModelSpec
from components.preprocess.config import preprocess_config
from components.preprocess.process import process_chunk
from components.serving.decode import InputError
from components.serving.faces import plan_for
from components.serving.predictor import Predictor
from components.serving.settings import ServingSettings
from pipelines import predict as predict_module
from tests.serving.conftest import png_b64

INPUTS = ("depth", "color", "color2d")


@dataclass
class Synth:
    """Rendered synthetic RGB-D samples: their manifest rows and labels.csv eye columns."""

    rows: list[dict]
    labels: pd.DataFrame

    def eyes(self, i: int, suffix: str = "") -> list[float]:
        return [float(self.labels.iloc[i][c + suffix]) for c in ("lx", "ly", "rx", "ry")]


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Two 96x96 synthetic RGB-D photos (with 2-D camera images), as ``ferops data synth``."""
    out = tmp_path_factory.mktemp("synth") / "synthetic"
    cfg = SyntheticConfig(subjects=1, stills_per_subject_class=1, clips_per_subject_class=0,
                          classes=["happy", "sad"])
    generate(cfg, out=out, progress=False)
    rows = scan_rgbd_folder(out / "rgbd", source="synthetic")
    return Synth(rows, pd.read_csv(out / "rgbd" / "labels.csv"))


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    """Serving settings of an RGB-D + 2-D model; ``faces`` never calls the backend."""
    spec = ModelSpec("fusion_early", 2, 7, INPUTS, "rgbd", ["happiness", "sadness"])
    config = preprocess_config(None)
    settings = ServingSettings(spec, config, config.size, 3)
    return Predictor(settings, backend=lambda batch: np.full((len(batch), 2), 0.5, np.float32))


def stage_input(synth: Synth, predictor: Predictor) -> np.ndarray:
    """The preprocess stage's arrays for the rendered rows, stacked as the model reads them."""
    chunk = process_chunk(synth.rows, plan_for(predictor.settings))
    assert set(chunk.eye_sources) == {"landmarks"}
    return np.concatenate([chunk.arrays[m] for m in INPUTS], axis=1).astype(np.float32)


def request(synth: Synth, eyes: list | None = None, eyes2d: list | None = None) -> pd.DataFrame:
    frame = pd.DataFrame({
        "image": [Path(r["color"]).read_bytes() for r in synth.rows],
        "depth": [Path(r["depth"]).read_bytes() for r in synth.rows],
        "color2d": [Path(r["color2d"]).read_bytes() for r in synth.rows],
    })
    if eyes is not None:
        frame["eyes"] = eyes
    if eyes2d is not None:
        frame["eyes2d"] = eyes2d
    return frame


def test_given_eyes_reproduce_the_stage_input_exactly(synth, predictor):
    n = len(synth.rows)
    frame = request(synth, [synth.eyes(i) for i in range(n)],
                    [synth.eyes(i, "2d") for i in range(n)])
    faces = predictor.faces(predictor.requests(frame))
    assert [f.source for f in faces] == ["landmarks"] * n
    expected = stage_input(synth, predictor)
    # Same locate / warp / finishing code on the same pixels: bit-identical float16 values.
    np.testing.assert_array_equal(np.stack([f.sample for f in faces]), expected)
    for i, face in enumerate(faces):
        x, y, w, h = face.box
        lx, ly, rx, ry = synth.eyes(i)
        assert x <= lx < rx <= x + w and y <= min(ly, ry) <= max(ly, ry) <= y + h


def test_without_eyes_haar_misses_the_synthetic_face(synth, predictor):
    """Why the eyes matter: the cascade finds few rendered faces (those rows answer "no
    face"), and the ones it finds are framed unlike the stage's landmark alignment."""
    faces = predictor.faces(predictor.requests(request(synth)))
    assert "landmarks" not in {f.source for f in faces}
    assert len(faces) < len(synth.rows) or np.abs(
        np.stack([f.sample for f in faces]) - stage_input(synth, predictor)).max() > 0.05


def test_text_list_array_and_json_forms_agree(synth, predictor):
    quad = synth.eyes(0)
    forms = [",".join(map(str, quad)), quad, np.array(quad), json.dumps([quad])]
    samples = []
    for form in forms:
        frame = request(synth).iloc[:1].assign(eyes=[form])
        samples.append(predictor.faces(predictor.requests(frame))[0].sample)
    for sample in samples[1:]:
        np.testing.assert_array_equal(sample, samples[0])


def test_several_faces_in_given_order_and_missing_cells_detect(synth, predictor):
    first, second = synth.eyes(0), synth.eyes(1)
    frame = request(synth).iloc[:1].assign(eyes=[f"{','.join(map(str, first))};"
                                                 f"{','.join(map(str, second))}"])
    two = predictor.faces(predictor.requests(frame))
    assert [f.face for f in two] == [0, 1] and {f.source for f in two} == {"landmarks"}
    alone = predictor.faces(predictor.requests(request(synth).iloc[:1].assign(eyes=[second])))
    np.testing.assert_array_equal(two[1].sample, alone[0].sample)
    mixed = predictor.faces(predictor.requests(request(synth, [None, synth.eyes(1)])))
    assert [f.source for f in mixed if f.index == 1] == ["landmarks"]
    assert all(f.source != "landmarks" for f in mixed if f.index == 0)  # detected, if at all


@pytest.mark.parametrize("column, value, message", [
    ("eyes", "30,30,60", "expected 4 numbers"),
    ("eyes", [30, 30, 60, 30, 1], "expected 4 numbers"),
    ("eyes", "30,thirty,60,30", "'thirty' is not a number"),
    ("eyes", [30, 30, float("inf"), 30], "not a finite number"),
    ("eyes", [30, 30, 60, 120], "outside the 96x96 image"),
    ("eyes", [-3, 30, 60, 30], "outside the 96x96 image"),
    ("eyes", [40, 40, 40, 40], "less than 1 px apart"),
    ("eyes", [[30, 30, 60, 30], 5], "mixes numbers and lists"),
    ("eyes", "[[30, 30", "not valid JSON"),
    ("eyes2d", "30,30,60,30;31,30,61,30", "holds one face"),
])
def test_bad_eyes_raise_input_error(synth, predictor, column, value, message):
    frame = request(synth).iloc[:1].assign(**{column: [value]})
    with pytest.raises(InputError, match="row 0 " + column) as caught:
        predictor.requests(frame)
    assert message in str(caught.value)


def test_eyes2d_needs_a_color2d_image(synth, predictor):
    frame = request(synth).iloc[:1].drop(columns="color2d").assign(eyes2d=["30,30,60,30"])
    with pytest.raises(InputError, match="without a 'color2d' image"):
        predictor.requests(frame)


def test_pyfunc_takes_optional_eyes_column_and_answers_400_for_bad_eyes(store, synth, photo):
    """Through MLflow's schema enforcement: a missing cell, a text cell and a bad cell."""
    model = mlflow.pyfunc.load_model(store.serving_uri("baseline_cnn"))
    colour = png_b64(read_image(synth.rows[0]["color"]))
    quad = ",".join(map(str, synth.eyes(0)))
    out = model.predict(pd.DataFrame({"image": [photo.b64(), colour], "eyes": [None, quad]}))
    assert out["located_by"][0] in ("haar", "proportional")  # detected as before
    assert out["located_by"][1] == "landmarks"
    assert out["low_confidence"].dtype == bool
    with pytest.raises(MlflowException) as caught:
        model.predict(pd.DataFrame({"image": [colour], "eyes": ["1,2,3"]}))
    assert caught.value.get_http_status_code() == 400
    assert "row 0 eyes: expected 4 numbers" in caught.value.message


def test_cli_eyes_flag(store, synth, capsys):
    images = [r["color"] for r in synth.rows]
    quad = ",".join(map(str, synth.eyes(1)))
    code = predict_module.main(["--model", store.serving_uri("baseline_cnn"), "--json",
                                *images, "--eyes", "-", "--eyes", quad])
    assert code == 0
    faces = json.loads(capsys.readouterr().out)
    located = {f["input"]: f.get("located_by") for f in faces}  # no face: no located_by
    assert located[images[1]] == "landmarks" and located[images[0]] != "landmarks"
    assert predict_module.main(["--model", store.serving_uri("baseline_cnn"), images[0],
                                "--eyes", quad]) == 0
    assert "(eyes given)" in capsys.readouterr().out
    code = predict_module.main(["--model", store.serving_uri("baseline_cnn"), *images,
                                "--eyes", quad])
    assert code == 2 and "--eyes: 1 files for 2 images" in capsys.readouterr().err
    code = predict_module.main(["--model", store.serving_uri("baseline_cnn"), images[0],
                                "--eyes", "10,10,500,10"])
    assert code == 2 and "outside the 96x96 image" in capsys.readouterr().err
