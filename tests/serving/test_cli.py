"""``ferops predict`` (text, JSON, annotation), ``ferops export onnx`` and ONNX parity."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest

from components.data.io import read_image, write_image
from components.errors import DataError
from components.models import create_model
from components.serving.onnx_export import (
    example_batch,
    export_onnx,
    onnx_backend,
    settings_path,
)
from components.serving.predictor import classifier_backend
from components.serving.pyfunc import LoadedModel
from pipelines import export as export_module
from pipelines import predict as predict_module
from tests.tracking.conftest import tracking_env


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """The RGB-D model's network as ONNX (exported once through the CLI)."""
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    with tracking_env(trained.uri, trained.workspace.root):
        mlflow.set_tracking_uri(trained.uri)
        assert export_module.main(["onnx", "--model", trained.serving_uri("fusion_twostream"),
                                   "--out", str(out)]) == 0
    assert settings_path(out).is_file()
    return out


def test_predict_prints_box_and_top3(store, photo, capsys):
    code = predict_module.main(["--model", store.serving_uri("baseline_cnn"), str(photo.color)])
    out = capsys.readouterr().out
    assert code == 0
    assert "1 face(s)" in out and "face 0 [x=" in out
    assert out.count("%") == 3


def test_predict_as_typed_prints_no_download_progress(trained, photo):
    """The real command with MLflow's defaults: the model's files are copied out of the store
    without a progress bar (its code alone is about 120 files), so stderr stays empty."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"}
    env.update(MLFLOW_TRACKING_URI=trained.uri, FEROPS_PROJECT_ROOT=str(trained.workspace.root))
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "predict", "--model",
                           trained.serving_uri("baseline_cnn"), str(photo.color)],
                          cwd=Path(__file__).resolve().parents[2], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "1 face(s)" in done.stdout, done.stderr
    assert done.stderr == "", done.stderr


def test_predict_json_and_annotate(store, photo, tmp_path, capsys):
    target = tmp_path / "annotated.png"
    code = predict_module.main(["--model", store.serving_uri("fusion_twostream"), "--json",
                                str(photo.color), "--depth", str(photo.depth),
                                "--annotate", str(target)])
    assert code == 0
    faces = json.loads(capsys.readouterr().out)
    assert len(faces) == 1 and len(faces[0]["top"]) == 3
    top = [t["probability"] for t in faces[0]["top"]]
    assert top == sorted(top, reverse=True)
    drawn = read_image(target)
    assert drawn.shape == photo.image.shape and not np.array_equal(drawn, photo.image)


def test_a_missing_modality_is_refused_before_the_weights_load(store, photo, tmp_path,
                                                              capsys, monkeypatch):
    """The model's metadata decides: the error names the flag and the model that would take
    the photo, and no model is built (``build_predictor`` is never reached)."""
    def never(*_args, **_kwargs):
        raise AssertionError("the model was loaded before the input check")

    monkeypatch.setattr(predict_module, "build_predictor", never)
    code = predict_module.main(["--model", store.serving_uri("fusion_twostream"),
                                str(photo.color)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "reads RGB-D input" in err and "--depth" in err
    assert "models:/ferops-image@champion" in err
    clip = tmp_path / "clip"
    clip.mkdir()
    write_image(clip / "frame_000.png", photo.image)
    assert predict_module.main(["--model", store.serving_uri("baseline_cnn"), str(clip)]) == 2
    assert "models:/ferops-video@champion" in capsys.readouterr().err


def test_a_bad_file_among_several_is_named_and_the_others_are_scored(store, photo, tmp_path,
                                                                    capsys):
    """One corrupt photo costs itself, not the command: the others are printed, the bad
    one is named by its path (not by the request's row number), and the exit is 2."""
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    model = store.serving_uri("baseline_cnn")
    code = predict_module.main(["--model", model, str(broken), str(photo.color)])
    captured = capsys.readouterr()
    assert code == 2
    assert f"{photo.color}: 1 face(s)" in captured.out
    assert f"not scored: {broken}: not an image" in captured.out
    assert captured.err.strip() == f"error: {broken}: not an image (cannot decode 12 bytes)"
    assert "row " not in captured.out + captured.err

    code = predict_module.main(["--model", model, "--json", str(photo.color), str(broken)])
    records = json.loads(capsys.readouterr().out)
    assert code == 2 and [r["input"] for r in records] == [str(photo.color), str(broken)]
    assert records[0]["face"] == 0 and records[1]["error"].startswith(f"{broken}: not an image")

    assert predict_module.main(["--model", model, str(broken)]) == 2  # alone: one line
    assert capsys.readouterr().err.strip() == f"error: {broken}: not an image (cannot decode " \
                                              "12 bytes)"


def test_a_bad_depth_map_names_the_depth_file_and_its_photo(store, photo, tmp_path, capsys):
    model = store.serving_uri("fusion_twostream")
    broken = tmp_path / "broken_depth.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    code = predict_module.main(["--model", model, str(photo.color), "--depth", str(broken)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {broken} (--depth of {photo.color}): ")
    small = tmp_path / "small_depth.png"  # decodes, but does not fit the photo
    write_image(small, np.zeros((10, 10), np.uint16))
    code = predict_module.main(["--model", model, str(photo.color), "--depth", str(small)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {photo.color}: depth map 10x10 does not match")


def test_a_folder_for_a_still_model_points_to_the_table_mode(store, photo, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.png", photo.image)
    assert predict_module.main(["--model", store.serving_uri("baseline_cnn"), str(folder)]) == 2
    err = capsys.readouterr().err
    assert "scores still photos" in err and "--to faces.csv FOLDER" in err


def test_inputs_check_names_the_alternative_in_the_same_registry_line():
    from components.serving.inputs import missing_inputs, registered_prefix

    assert registered_prefix("models:/acme-rgbd@champion") == "acme"
    assert registered_prefix("runs:/abc/serving") == "ferops"
    problem = missing_inputs("c3d_ecstfl", ("frames",), {"image"}, "acme")
    assert "models:/acme-image@champion" in problem and "clip" in problem
    assert missing_inputs("fusion_early", ("depth", "color", "color2d"),
                          {"image", "depth"}) == ""
    assert missing_inputs("baseline_cnn", ("color",), {"image"}) == ""


def test_predict_says_no_face_and_crop_takes_the_whole_photo(store, tmp_path, capsys):
    blank = tmp_path / "blank.png"
    write_image(blank, np.full((240, 320, 3), 128, np.uint8))
    assert predict_module.main(["--model", store.serving_uri("baseline_cnn"), str(blank)]) == 0
    assert "blank.png: no face found" in capsys.readouterr().out
    assert predict_module.main(["--model", store.serving_uri("baseline_cnn"), "--crop", "--json",
                                str(blank)]) == 0
    (face,) = json.loads(capsys.readouterr().out)
    assert face["located_by"] == "aligned_crop" and face["box"] == {"x": 0, "y": 0, "w": 320,
                                                                    "h": 240}


def test_onnx_matches_torch_at_batch_1_and_many(store, exported):
    inner = mlflow.pyfunc.load_model(store.serving_uri("fusion_twostream")).unwrap_python_model()
    loaded: LoadedModel = inner.loaded
    torch_run, onnx_run = classifier_backend(loaded.classifier), onnx_backend(exported)
    session = onnx_run.session
    import torch

    for n in (1, 7):
        batch = example_batch(loaded.settings, n, seed=n)
        with torch.no_grad():
            logits = loaded.classifier.network()(torch.from_numpy(batch)).numpy()
        onnx_logits = session.run(None, {session.get_inputs()[0].name: batch})[0]
        assert onnx_logits.shape == (n, len(loaded.settings.classes))
        assert np.abs(onnx_logits - logits).max() <= 1e-4
        assert np.abs(onnx_run(batch) - torch_run(batch)).max() <= 1e-4


def test_onnx_runtime_without_a_file_exports_to_scratch_it_removes(store, photo, tmp_path,
                                                                   monkeypatch):
    """``--runtime onnx`` without ``--onnx`` exports the model for the session alone: the file
    is gone once onnxruntime has read it, and the predictor still answers."""
    import tempfile

    import pandas as pd

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    predictor = predict_module.build_predictor(store.serving_uri("baseline_cnn"), "onnx")
    assert list(scratch.iterdir()) == []
    faces = predictor.predict(pd.DataFrame({"image": [photo.b64()]}))
    assert len(faces) == 1


def test_predict_onnx_runtime_matches_torch(store, photo, exported, capsys):
    common = ["--json", str(photo.color), "--depth", str(photo.depth)]
    assert predict_module.main(["--model", store.serving_uri("fusion_twostream"), *common]) == 0
    torch_faces = json.loads(capsys.readouterr().out)
    assert predict_module.main(["--runtime", "onnx", "--onnx", str(exported), *common]) == 0
    onnx_faces = json.loads(capsys.readouterr().out)
    for a, b in zip(torch_faces, onnx_faces, strict=True):
        assert a["box"] == b["box"]
        for c, p in a["probabilities"].items():
            assert abs(p - b["probabilities"][c]) <= 1e-4


def test_export_refuses_estimators(store, tmp_path):
    inner = mlflow.pyfunc.load_model(store.serving_uri("baseline_cnn")).unwrap_python_model()
    settings = inner.loaded.settings
    import dataclasses

    spec = dataclasses.replace(settings.spec, arch="svm_fusion")
    unfitted = create_model("svm_fusion", 2, 4)  # a classifier that is not one network
    estimator = LoadedModel(dataclasses.replace(settings, spec=spec), unfitted)
    with pytest.raises(DataError, match="svm_fusion"):
        export_onnx(estimator, tmp_path / "x.onnx")


def test_predict_fails_fast_with_one_line_when_the_tracking_server_is_down(tmp_path, capsys):
    """A dead server is one probe and one ``error:`` line, not minutes of MLflow retries."""
    import time

    from tests.tracking.conftest import free_port

    photo = tmp_path / "face.png"
    photo.write_bytes(b"not read: the store is probed first")
    with tracking_env(f"http://127.0.0.1:{free_port()}", tmp_path):
        started = time.monotonic()
        code = predict_module.main(["--model", "models:/ferops-image@champion", str(photo)])
        elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 2 and elapsed < 30
    assert "unreachable" in err and len(err.strip().splitlines()) == 1


def test_predict_to_a_table_scores_a_folder_and_skips_a_corrupt_file(store, photo, tmp_path,
                                                                   capsys):
    import csv
    import shutil

    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(photo.color, folder / "a.png")
    shutil.copy(photo.color, folder / "sub" / "b.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    blank = np.full((240, 320, 3), 128, np.uint8)  # no face: listed, no row
    write_image(folder / "blank.png", blank)
    out, drawn = tmp_path / "faces.csv", tmp_path / "drawn"
    args = ["--model", store.serving_uri("baseline_cnn"), str(folder), "--to", str(out),
            "--annotate-dir", str(drawn)]
    assert predict_module.main(args) == 0
    printed = capsys.readouterr().out
    assert "4 files" in printed and "1 unreadable or refused" in printed and "broken.png" in printed
    assert "row 0" not in printed  # the file is named; the request's row number says nothing
    assert "1 without a detected face" in printed and f"no face: {folder / 'blank.png'}" in printed
    rows = list(csv.DictReader(out.open()))
    assert {row["file"] for row in rows} == {str(folder / n) for n in ("a.png", "sub/b.png")}
    for row in rows:  # every class probability, summing to one
        assert abs(sum(float(v) for k, v in row.items() if k.startswith("p_")) - 1) < 1e-4
    assert len(list(drawn.glob("*.png"))) == 2
    assert predict_module.main([*args, "--strict"]) == 2  # a bad file fails a strict run


def test_evaluate_another_labelled_set_matches_a_hand_count(store, photo, tmp_path, capsys):
    """Class folders the model knows are scored through the serving chain; a label it does
    not know is left out and reported."""
    import json
    import shutil

    from pipelines import evaluate as evaluate_module

    uri = store.serving_uri("baseline_cnn")
    predictor = predict_module.build_predictor(uri)
    classes = list(predictor.settings.classes)
    unknown = next(c for c in ("contempt", "disgust", "fear", "sadness") if c not in classes)
    folder = tmp_path / "external"
    for i, label in enumerate([classes[0], classes[0], classes[1], unknown]):
        (folder / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(photo.color, folder / label / f"{i}.png")
    # read by the set's reader, refused by serving (below its minimum side): skipped, listed
    write_image(folder / classes[1] / "tiny.png", np.full((4, 4, 3), 128, np.uint8))
    out = tmp_path / "report"
    assert evaluate_module.main(["--model", uri, "--source", "image_folder", "--path",
                                 str(folder), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    one = predictor.predict(predict_module.request_frame(predictor, [str(photo.color)]))
    top = classes[int(one.loc[one["face"] == 0, [f"p_{c}" for c in classes]].to_numpy()
                      .argmax())]
    expected = sum(label == top for label in (classes[0], classes[0], classes[1])) / 3
    assert metrics["n_scored"] == 3 and metrics["accuracy"] == pytest.approx(expected)
    assert metrics["not_in_model"] == {unknown: 1}
    [(tiny, reason)] = metrics["skipped"].items()
    assert tiny.endswith("tiny.png") and "minimum side" in reason and "row 0" not in reason
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert "photos scored: 3" in capsys.readouterr().out


def test_evaluate_log_tags_the_registered_version_and_its_card(store, photo, tmp_path):
    import shutil

    from mlflow import MlflowClient

    from pipelines import evaluate as evaluate_module

    name = "t-external-" + tmp_path.name[-8:].replace("_", "-")
    version = mlflow.register_model(store.serving_uri("baseline_cnn"), name).version
    classes = list(predict_module.build_predictor(store.serving_uri("baseline_cnn"))
                   .settings.classes)
    folder = tmp_path / "set"
    (folder / classes[0]).mkdir(parents=True)
    shutil.copy(photo.color, folder / classes[0] / "a.png")
    argv = ["--model", f"models:/{name}/{version}", "--source", "image_folder", "--path",
            str(folder), "--name", "mini", "--out", str(tmp_path / "out"), "--log"]
    assert evaluate_module.main(argv) == 0
    assert evaluate_module.main(argv) == 0  # again: one card line per set, replaced
    mv = MlflowClient().get_model_version(name, version)
    assert mv.tags["external.mini.n"] == "1" and "external.mini.uar" in mv.tags
    assert mv.description.count("`mini` (1 photos)") == 1
    runs_uri = ["--model", store.serving_uri("baseline_cnn"), "--source", "image_folder",
                "--path", str(folder), "--log"]
    assert evaluate_module.main(runs_uri) == 2  # --log needs a registered version
