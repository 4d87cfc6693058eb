"""Trained models for the serving tests: tiny RGB-D arrays, tracked in a tmp sqlite store."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from components.data.io import write_image
from tests.preprocess.faces import drawn_photo, marker_depth
from tests.tracking.conftest import Workspace, make_workspace, tracking_env

ARCHS: tuple[str, ...] = ("baseline_cnn", "fusion_twostream")


@dataclass
class Trained:
    """The workspace, its store and the training records (run records per arch)."""

    workspace: Workspace
    uri: str
    records: dict[str, dict]

    def serving_uri(self, arch: str) -> str:
        return self.records[arch]["serving_uri"]


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """baseline_cnn (colour) and fusion_twostream (depth + colour) trained 2 epochs, once."""
    ws = make_workspace(tmp_path_factory.mktemp("serving"))
    uri = f"sqlite:///{ws.root / 'mlflow.db'}"
    with tracking_env(uri, ws.root, MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"):
        for arch in ARCHS:
            assert ws.train(arch) == 0
    return Trained(ws, uri, {arch: ws.run_record(arch) for arch in ARCHS})


@pytest.fixture
def store(trained: Trained):
    """MLflow pointed at the trained store for one test."""
    import mlflow

    with tracking_env(trained.uri, trained.workspace.root,
                      MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"):
        mlflow.set_tracking_uri(trained.uri)
        yield trained


@dataclass
class Photo:
    """A photo on disk with a detectable face, its registered depth map and the face centre."""

    color: Path
    depth: Path
    centre: tuple[int, int]
    image: np.ndarray

    def b64(self, which: str = "color") -> str:
        return base64.b64encode(getattr(self, which).read_bytes()).decode("ascii")


@pytest.fixture(scope="session")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Photo:
    """A 640x480 cartoon face (Haar finds it) with a depth map: face bumps near, wall far."""
    folder = tmp_path_factory.mktemp("photos")
    image, centre = drawn_photo(480, 640, face_width=180, seed=1)
    depth = marker_depth(480, 640, [centre], base=1500, near=400, radius=90.0)
    return Photo(write_image(folder / "face.png", image), write_image(folder / "face_depth.png",
                                                                    depth), centre, image)


def png_b64(image: np.ndarray) -> str:
    """Base64 PNG of an RGB/grey uint8 or uint16 array."""
    out = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, data = cv2.imencode(".png", out)
    assert ok
    return base64.b64encode(data.tobytes()).decode("ascii")
