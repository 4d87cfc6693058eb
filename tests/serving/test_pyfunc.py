"""The raw-input pyfunc: faces found, probabilities, training-chain parity, bad inputs."""

from __future__ import annotations

import dataclasses

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from components.data.io import read_image
from components.models import load_trained
from components.preprocess.config import preprocess_config
from components.preprocess.process import TaskPlan, process_chunk
from tests.preprocess.faces import drawn_photo
from tests.serving.conftest import png_b64


def probabilities(frame: pd.DataFrame) -> np.ndarray:
    return frame[[c for c in frame.columns if c.startswith("p_")]].to_numpy()


def test_training_logs_serving_model_and_test_digest(store):
    record = store.records["baseline_cnn"]
    assert record["serving_uri"] == f"runs:/{record['run_id']}/serving"
    run = mlflow.get_run(record["run_id"])
    assert run.data.tags["data.test_digest"] == record["test_digest"]
    assert len(record["test_digest"]) == 64
    assert mlflow.pyfunc.load_model(record["model_uri"]) is not None  # tensor model unchanged
    # The registry's optional latency budget reads this measured batch-1 model time.
    assert 0.0 < record["latency_ms"] < 1000.0
    assert run.data.metrics["latency_ms"] == pytest.approx(record["latency_ms"])


def test_photo_gives_one_face_with_box_and_probabilities(store, photo):
    model = mlflow.pyfunc.load_model(store.serving_uri("baseline_cnn"))
    out = model.predict(pd.DataFrame({"image": [photo.b64(), str(photo.color),
                                                photo.color.read_bytes()]}))
    assert list(out["input"]) == [0, 1, 2]
    first = out.iloc[0]
    cx, cy = photo.centre
    assert first["x"] < cx < first["x"] + first["w"] and first["y"] < cy < first["y"] + first["h"]
    assert set(out["located_by"]) <= {"haar", "proportional"}
    np.testing.assert_allclose(probabilities(out).sum(axis=1), 1.0, atol=1e-5)
    # base64, path and bytes are the same photo: the same answer.
    np.testing.assert_allclose(probabilities(out)[1:], np.repeat(probabilities(out)[:1], 2, 0))
    assert set(out["label"]) <= {c[2:] for c in out.columns if c.startswith("p_")}


def test_two_faces_in_one_photo_give_two_rows(store):
    left, _ = drawn_photo(480, 640, face_width=180, seed=2)
    right, _ = drawn_photo(480, 640, face_width=140, seed=3)
    wide = np.concatenate([left, right], axis=1)
    model = mlflow.pyfunc.load_model(store.serving_uri("baseline_cnn"))
    out = model.predict(pd.DataFrame({"image": [png_b64(wide)]}))
    assert list(out["face"]) == [0, 1]
    assert out.iloc[0]["w"] > out.iloc[1]["w"]  # largest first
    assert out.iloc[0]["x"] < 640 <= out.iloc[1]["x"]


def test_photo_without_face_gives_no_face_unless_it_is_said_to_be_a_crop(store):
    """Serving never invents a face: a blank or noise photo gets no expression at all."""
    blank = np.full((200, 300, 3), 128, np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    model = mlflow.pyfunc.load_model(store.serving_uri("baseline_cnn"))
    out = model.predict(pd.DataFrame({"image": [png_b64(blank), png_b64(noise)]}))
    assert out.empty and "label" in out.columns
    out = model.predict(pd.DataFrame({"image": [png_b64(blank)], "crop": [True]}))
    assert len(out) == 1 and out.iloc[0]["located_by"] == "aligned_crop"
    assert tuple(out.iloc[0][["x", "y", "w", "h"]]) == (0, 0, 300, 200)
    with pytest.raises(MlflowException):
        model.predict(pd.DataFrame({"image": [png_b64(blank)], "crop": ["maybe"]}))


def test_low_confidence_is_flagged_by_the_serving_threshold(store, photo):
    inner = mlflow.pyfunc.load_model(store.serving_uri("baseline_cnn")).unwrap_python_model()
    predictor = inner.loaded.predictor()
    faces = predictor.faces(predictor.requests(str(photo.color))) * 2
    classes = len(predictor.settings.classes)
    sure = np.full(classes, 0.1 / (classes - 1), np.float32)
    sure[0] = 0.9
    unsure = np.full(classes, 1.0 / classes, np.float32)
    for threshold, expected in ((0.4, [False, True]), (0.95, [True, True]), (0.0, [False, False])):
        limits = dataclasses.replace(predictor.settings.limits, min_confidence=threshold)
        predictor.settings = dataclasses.replace(predictor.settings, limits=limits)
        table = predictor.table(faces, np.stack([sure, unsure]))
        assert list(table["low_confidence"]) == expected


def test_served_face_matches_the_tensor_model_on_the_training_chain(store, photo):
    """The preprocess stage's own chunk processing + the trained network = the pyfunc."""
    uri = store.serving_uri("fusion_twostream")
    inner = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    settings = inner.loaded.settings
    plan = TaskPlan("image", settings.size, settings.channels, ("color", "depth"),
                    preprocess_config(settings.preprocess.as_dict()))
    chunk = process_chunk([{"color": str(photo.color), "depth": str(photo.depth)}], plan)
    stacked = np.concatenate([chunk.arrays["depth"], chunk.arrays["color"]], axis=1)
    run_dir = store.workspace.out("fusion_twostream")
    _, classifier = load_trained(run_dir)
    expected = classifier.predict_proba(stacked.astype(np.float32))
    out = mlflow.pyfunc.load_model(uri).predict(
        pd.DataFrame({"image": [photo.b64()], "depth": [photo.b64("depth")]}))
    assert len(out) == 1
    np.testing.assert_allclose(probabilities(out), expected, atol=1e-5)


def test_array_input_for_python_callers(store, photo):
    model = mlflow.pyfunc.load_model(store.serving_uri("baseline_cnn")).unwrap_python_model()
    from_array = model.predict(None, read_image(photo.color))
    from_list = model.predict(None, [read_image(photo.color)] * 2)
    assert len(from_array) == 1 and len(from_list) == 2
    np.testing.assert_allclose(probabilities(from_list)[0], probabilities(from_array)[0])


@pytest.mark.parametrize("payload, message", [
    ({"image": ["aGVsbG8gd29ybGQ="]}, "not an image"),
    ({"image": [png_b64(np.zeros((4200, 10, 3), np.uint8))]}, "4096 px side limit"),
    ({"image": [np.zeros((30, 30, 5), np.uint8)]}, "expected an (H, W) or (H, W, 3)"),
    ({"image": [png_b64(np.zeros((60, 80, 3), np.uint8))]}, "reads RGB-D input"),
    ({"frames": [[png_b64(np.zeros((60, 80, 3), np.uint8))]]}, "scores still images"),
])
def test_bad_inputs_raise_invalid_parameter_value(store, payload, message):
    model = mlflow.pyfunc.load_model(store.serving_uri("fusion_twostream")).unwrap_python_model()
    with pytest.raises(MlflowException, match=None) as caught:
        model.predict(None, pd.DataFrame(payload))
    assert caught.value.get_http_status_code() == 400
    assert message in caught.value.message


def test_base64_with_slashes_longer_than_a_file_name_is_not_taken_for_a_path() -> None:
    from components.serving.decode import image_bytes
    from components.serving.settings import ServingConfig

    noise = np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    text = png_b64(noise)
    longest_part = max(len(part) for part in text.split("/"))
    assert "/" in text and longest_part > 255  # the OS would refuse it as a path name
    assert image_bytes(text, "image", ServingConfig())[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_folder_saved_as_serving_model_answers_like_the_logged_one(store, photo,
                                                                         tmp_path):
    """``save_serving_model`` (the load benchmark serves a run folder with the checkout's
    code) gives the model the train stage logged; loading it puts Arrow on the system
    allocator, so a large request's memory goes back to the OS."""
    import pyarrow

    from components.serving.pyfunc import (
        is_run_folder,
        run_task_dir,
        save_serving_model,
    )

    ws = store.workspace
    run_dir = ws.out("baseline_cnn")
    assert is_run_folder(run_dir) and not is_run_folder(ws.task_dir)
    pyarrow.set_memory_pool(pyarrow.mimalloc_memory_pool())
    saved = save_serving_model(run_dir, run_task_dir(run_dir, ws.data), {}, {},
                               tmp_path / "model")
    model = mlflow.pyfunc.load_model(str(saved))
    assert pyarrow.default_memory_pool().backend_name == "system"
    logged = mlflow.pyfunc.load_model(store.serving_uri("baseline_cnn"))
    request = pd.DataFrame({"image": [photo.b64()]})
    np.testing.assert_allclose(probabilities(model.predict(request)),
                               probabilities(logged.predict(request)), atol=1e-6)
    # Every request column optional: the model, not MLflow's echoing check, refuses.
    schema = model.metadata.get_input_schema()
    assert {c.name for c in schema.inputs} >= {"image", "depth", "frames", "crop"}
    assert not any(c.required for c in schema.inputs)


@pytest.mark.parametrize("kind", ["runs", "models"])
def test_loading_a_tracked_model_leaves_no_copy_in_the_temporary_directory(store, photo,
                                                                           tmp_path, monkeypatch,
                                                                           kind):
    """MLflow downloads a ``runs:/`` or ``models:/`` model into a ``mkdtemp`` folder it never
    deletes; ``resolve_model`` (every ``ferops predict``) must not leave that copy behind,
    and the model it returns still answers once the copy is gone."""
    import tempfile

    from components.serving.pyfunc import resolve_model

    uri = store.serving_uri("baseline_cnn")
    if kind == "models":
        name = "t-leak-" + tmp_path.name[-8:].replace("_", "-")
        uri = f"models:/{name}/{mlflow.register_model(uri, name).version}"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    loaded = resolve_model(uri)
    assert list(scratch.iterdir()) == []
    faces = loaded.predictor().predict(pd.DataFrame({"image": [photo.b64()]}))
    assert len(faces) == 1
