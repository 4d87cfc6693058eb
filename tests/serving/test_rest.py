"""``mlflow models serve`` of the raw-input model: 200 for a photo, 400 + message for each
kind of bad payload, and still serving afterwards."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from components.serving.server import model_server_command, model_server_env
from tests.serving.conftest import png_b64
from tests.tracking.conftest import free_port, running


def post(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}/invocations", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def split(rows: list[dict]) -> dict:
    columns = sorted({k for row in rows for k in row})
    return {"dataframe_split": {"columns": columns,
                                "data": [[row.get(c) for c in columns] for row in rows]}}


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    """The RGB-D serving model behind ``mlflow models serve`` on 127.0.0.1."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    command = model_server_command(trained.serving_uri("fusion_twostream"), port)
    env = {"MLFLOW_TRACKING_URI": trained.uri, **model_server_env()}
    with running(command, port, log, env) as url:
        yield url


def test_served_model_answers_a_photo_then_rejects_bad_payloads_and_keeps_serving(
        server, photo):
    good = split([{"image": photo.b64(), "depth": photo.b64("depth")}])
    status, body = post(server, good)
    assert status == 200, body
    faces = body["predictions"]
    assert len(faces) == 1 and faces[0]["located_by"] in ("haar", "proportional")
    assert abs(sum(v for k, v in faces[0].items() if k.startswith("p_")) - 1) < 1e-5

    # Optional eyes (text for JSON callers, or a JSON list) skip detection; rows without
    # them still detect.
    cx, cy = photo.centre
    eyes = [cx - 36, cy - 28, cx + 36, cy - 28]
    status, body = post(server, split([
        {"image": photo.b64(), "depth": photo.b64("depth"), "eyes": ",".join(map(str, eyes))},
        {"image": photo.b64(), "depth": photo.b64("depth"), "eyes": eyes},
        {"image": photo.b64(), "depth": photo.b64("depth"), "eyes": None}]))
    assert status == 200, body
    located = [f["located_by"] for f in body["predictions"]]
    assert located[:2] == ["landmarks", "landmarks"] and located[2] in ("haar", "proportional")

    rgb = png_b64(np.zeros((60, 80, 3), np.uint8))
    bad = {
        "not an image": split([{"image": "aGVsbG8gd29ybGQ=", "depth": photo.b64("depth")}]),
        "4096 px side limit": split([{"image": png_b64(np.zeros((10, 4500, 3), np.uint8)),
                                      "depth": photo.b64("depth")}]),
        "must be single-channel": split([{"image": photo.b64(), "depth": rgb}]),
        "reads RGB-D input": split([{"image": photo.b64()}]),
        "row 0 eyes: expected 4 numbers": split([{"image": photo.b64(), "eyes": "1,2,3",
                                                  "depth": photo.b64("depth")}]),
        "outside the 640x480 image": split([{"image": photo.b64(), "eyes": "1,2,3,900",
                                             "depth": photo.b64("depth")}]),
        # Every column is optional in the schema, so MLflow's own check (which echoes the
        # request) never answers: the model names the fix.
        "scores still images; send one image in column 'image', not 'frames'":
            {"dataframe_records": [{"frames": [rgb, rgb]}]},
        "expected 'image'": {"dataframe_records": [{"photo": rgb}]},
        "row 0 image: expected image bytes": {"dataframe_records": [{"image": 5}]},
    }
    for message, payload in bad.items():
        status, body = post(server, payload)
        assert 400 <= status < 500, (message, status, body)
        assert message in body.get("message", ""), (message, body)
        assert "Failed to predict data" not in body["message"]  # no echo of the request
        assert rgb[:40] not in body["message"]

    status, body = post(server, good)
    assert status == 200 and len(body["predictions"]) == 1
