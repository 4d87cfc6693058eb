"""The video task through the serving model: a list of frames in, one clip prediction out."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from components.data.io import write_image
from pipelines import predict as predict_module
from tests.preprocess.faces import drawn_photo
from tests.serving.conftest import png_b64
from tests.synthetic_task import make_synthetic_task
from tests.tracking.conftest import make_workspace, tracking_env


@pytest.fixture(scope="module")
def video_model(tmp_path_factory: pytest.TempPathFactory):
    """c3d_ecstfl trained 2 epochs on tiny clips, tracked in its own tmp store."""
    ws = make_workspace(tmp_path_factory.mktemp("video"))
    make_synthetic_task(ws.data, "video", size=16, frames=4,
                        sizes={"train": 32, "val": 16, "test": 16})
    uri = f"sqlite:///{ws.root / 'mlflow.db'}"
    with tracking_env(uri, ws.root, MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"):
        assert ws.train("c3d_ecstfl") == 0
        mlflow.set_tracking_uri(uri)
        record = ws.run_record("c3d_ecstfl")
        yield record, mlflow.pyfunc.load_model(record["serving_uri"])


def clip_frames(count: int = 5) -> list[np.ndarray]:
    """A short clip of one cartoon face (Haar finds it in every frame)."""
    return [drawn_photo(240, 320, face_width=110, seed=seed)[0] for seed in range(count)]


def test_frame_list_gives_one_clip_prediction(video_model) -> None:
    record, model = video_model
    frames = [png_b64(frame) for frame in clip_frames()]
    out = model.predict(pd.DataFrame({"frames": [frames]}))
    assert record["task"] == "video" and len(out) == 1
    probabilities = out.filter(like="p_").to_numpy()
    assert probabilities.shape[1] == 4 and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    classes = [column[2:] for column in out.filter(like="p_").columns]
    assert out["located_by"].iloc[0] in ("haar", "proportional")
    assert out["label"].iloc[0] in classes


def test_a_still_image_sent_to_the_video_model_is_refused(video_model) -> None:
    _, model = video_model
    with pytest.raises(MlflowException, match="frames"):
        model.predict(pd.DataFrame({"image": [png_b64(clip_frames(1)[0])]}))


def test_predict_cli_reads_a_clip_folder(video_model, tmp_path: Path, capsys) -> None:
    record, _ = video_model
    folder = tmp_path / "clip"
    for index, frame in enumerate(clip_frames()):
        write_image(folder / f"frame_{index:04d}.png", frame)
    with tracking_env(mlflow.get_tracking_uri(), tmp_path):
        code = predict_module.main(["--model", record["serving_uri"], str(folder), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result) == 1 and len(result[0]["top"]) == 3
