"""The champion as an MLflow pyfunc that takes raw photos: :class:`FaceExpressionModel`.

The tensor-in ``model`` logged by training suits evaluation; users and services hold photos.
This bundle carries the trained file (``model.pt`` / ``model.pkl``) and ``serving.json`` (the
preprocess settings + model spec) as artifacts, and the ``components`` package as code, so
``mlflow models serve`` runs detection, alignment and the intensity chain without a ferops
checkout. Bad requests raise ``MlflowException(INVALID_PARAMETER_VALUE)``, which the scoring
server answers with HTTP 400 and the message (``MlflowException.get_http_status_code``).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from components.errors import DataError, FeropsError
from components.models import Classifier, load_trained
from components.models.classifier import ESTIMATOR_FILE, TORCH_FILE
from components.serving.decode import encode_png, to_base64
from components.serving.predictor import (
    Predictor,
    classifier_backend,
)
from components.serving.settings import (
    SETTINGS_FILE,
    ServingSettings,
    build_settings,
    read_settings,
)

log = logging.getLogger(__name__)

SERVING_NAME = "serving"  # artifact name: the model URI is ``runs:/<run_id>/serving``
MODEL_ARTIFACT = "model"
SETTINGS_ARTIFACT = "settings"
CODE_DIR = Path(__file__).resolve().parents[1]  # the ``components`` package, shipped as code
SERVING_REQUIREMENTS: tuple[str, ...] = (
    "torch", "numpy", "pandas", "opencv-python-headless", "pillow", "pyyaml",
    "scikit-learn", "joblib", "cloudpickle",
)
EXAMPLE_ROWS = 2


@dataclass
class LoadedModel:
    """A trained classifier rebuilt from its file, with its serving settings."""

    settings: ServingSettings
    classifier: Classifier

    def predictor(self) -> Predictor:
        """A :class:`Predictor` running the classifier in process."""
        return Predictor(self.settings, classifier_backend(self.classifier))


def load_model_file(model_file: Path, settings: ServingSettings) -> LoadedModel:
    """Rebuild the trained model saved as ``model.pt`` / ``model.pkl``.

    Raises:
        DataError: the file is missing or not a ferops model file.
    """
    model_file = Path(model_file)
    if not model_file.is_file():
        raise DataError(f"{model_file}: model file not found")
    _, classifier = load_trained(model_file.parent)
    return LoadedModel(settings, classifier)


# The signature is given explicitly at log time; MLflow's nudge towards type hints (issued when
# the class is defined and at every load) is noise here.
warnings.filterwarnings("ignore", message=r".*type hints to the `predict` method.*")


class RequestRefused(MlflowException):
    """The 400 a bad request gets: its message is ours alone.

    MLflow's scoring server rewrites the message of any MlflowException raised by
    ``predict`` to ``Failed to predict data '<the whole request>'. Error: ...``, echoing the
    client's payload (megabytes of base64) back before the reason. This subclass keeps the
    message it was raised with.
    """

    def __init__(self, message: str, **kwargs: Any) -> None:
        self._line = str(message)
        super().__init__(message, **kwargs)

    @property  # type: ignore[override]
    def message(self) -> str:
        """The reason, as raised."""
        return self._line

    @message.setter
    def message(self, _value: str) -> None:
        """Ignored: the scoring server's prefix would echo the request."""


def release_request_memory_to_the_os() -> None:
    """Allocate Arrow buffers with the C library's malloc instead of Arrow's own pool.

    pandas 3 stores text columns in Arrow buffers, so a request's base64 images live in
    Arrow's own pool (mimalloc or jemalloc), which keeps freed memory for reuse: one 100 MB request
    left the server about 100 MB larger for good (``benchmarks/serve_load.py``). With the
    system pool the memory goes back when the request is done. Process-wide, which is what
    a server that loads one model wants.
    """
    try:
        import pyarrow
    except ImportError:  # pandas without Arrow strings: nothing to change
        return
    pyarrow.set_memory_pool(pyarrow.system_memory_pool())


class FaceExpressionModel(mlflow.pyfunc.PythonModel):
    """Raw photos (or RGB-D pairs, or frame lists) in; one row per detected face out.

    Input: a DataFrame with column ``image`` (base64 text, bytes or a file path) plus
    ``depth`` for RGB-D models, optional ``color2d``, or ``frames`` for video models; Python
    callers may also pass arrays. Optional ``eyes`` / ``eyes2d`` (``"lx,ly,rx,ry"``) give the
    eye centres and skip face detection (:mod:`components.serving.eyes`). Output: ``input,
    face, x, y, w, h, label, probability, low_confidence, located_by, p_<class>...``
    (see :meth:`Predictor.predict`); a row without a face gives no output row, and optional
    ``crop`` (true) says the image already is a face crop.
    """

    def __init__(self) -> None:
        self.loaded: LoadedModel | None = None
        self.predictor: Predictor | None = None

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        """Read ``serving.json`` and rebuild the network once per load."""
        release_request_memory_to_the_os()
        settings = read_settings(Path(context.artifacts[SETTINGS_ARTIFACT]))
        self.loaded = load_model_file(Path(context.artifacts[MODEL_ARTIFACT]), settings)
        self.predictor = self.loaded.predictor()

    # ``pd.DataFrame`` is one of the hints MLflow infers no schema from, so the explicit
    # signature stays in force, and MLflow no longer warns "Add type hints" at every load.
    def predict(
        self,
        context: mlflow.pyfunc.PythonModelContext | None,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Score every face of every input row.

        Raises:
            RequestRefused: INVALID_PARAMETER_VALUE (HTTP 400) for a bad request.
        """
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        if self.predictor is None:
            raise MlflowException("model artifacts are not loaded",
                                  error_code=INVALID_PARAMETER_VALUE)
        try:
            return self.predictor.predict(model_input)
        except FeropsError as exc:
            raise RequestRefused(str(exc), error_code=INVALID_PARAMETER_VALUE) from exc


def signature(settings: ServingSettings) -> Any:
    """Columns of the raw-input request and of the result table.

    Image columns are ``string`` (base64 text or a path), not ``binary``: MLflow's scoring
    server would base64-decode a ``binary`` column itself and then refuse paths, and Python
    callers' bytes pass through the pyfunc's enforcement as objects (tested through REST).
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from mlflow.types.schema import Array

    # One request schema for every model, each column optional, even the one the model
    # needs: MLflow's own schema check answers a missing column with a 400 that echoes the
    # whole request (pandas repr) before the reason, and drops columns the schema does not
    # list, so a clip sent to a photo model would arrive empty. The model's own 400 then
    # names the fix ("model c3d_ecstfl scores video clips: ... column 'frames'") and nothing
    # else; the MLmodel metadata ``inputs`` says which columns a model reads.
    # eyes / eyes2d: optional "lx,ly,rx,ry" text (Python callers may pass lists).
    inputs = [ColSpec("string", name, required=False)
              for name in ("image", "depth", "color2d", "eyes", "eyes2d")]
    inputs += [ColSpec(Array("string"), "frames", required=False),
               ColSpec("boolean", "crop", required=False)]
    outputs = [ColSpec("long", c) for c in ("input", "face", "x", "y", "w", "h")]
    outputs += [ColSpec("string", "label"), ColSpec("double", "probability"),
                ColSpec("boolean", "low_confidence"),
                ColSpec("string", "located_by")]
    outputs += [ColSpec("double", f"p_{c}") for c in settings.classes]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def example_request(task_dir: Path, settings: ServingSettings, split: str = "val"
                    ) -> pd.DataFrame:
    """A request of :data:`EXAMPLE_ROWS` real training faces as base64 PNG (+ depth).

    The preprocessed crops are turned back into 8-bit images (depth back into millimetres
    around 1 m), sent with ``crop`` true (they are aligned crops): a small but honest example
    that documents the payload and exercises the whole chain at log time.
    """
    from components.training.data import load_split

    rows = []
    if settings.is_video:
        clips = load_split(task_dir, split, ("frames",)).parts[0]
        for i in range(min(EXAMPLE_ROWS, len(clips))):
            frames = [_to_uint8(f) for f in np.asarray(clips[i], dtype=np.float32)]
            rows.append({"frames": [to_base64(encode_png(f)) for f in frames], "crop": True})
        return pd.DataFrame(rows)
    colour_key = next(m for m in settings.spec.inputs if m != "depth")
    colour = load_split(task_dir, split, (colour_key,)).parts[0]
    depth = (load_split(task_dir, split, ("depth",)).parts[0]
             if "depth" in settings.spec.inputs else None)
    for i in range(min(EXAMPLE_ROWS, len(colour))):
        row: dict[str, Any] = {"image": to_base64(encode_png(_to_uint8(colour[i])))}
        if depth is not None:
            mm = 1000.0 + (0.5 - np.asarray(depth[i, 0], np.float32)) * 200.0
            row["depth"] = to_base64(encode_png(np.round(mm).astype(np.uint16)))
        row["crop"] = True  # an aligned training crop: the whole image is the face
        rows.append(row)
    while len(rows) < EXAMPLE_ROWS:
        rows.append(dict(rows[-1]))
    return pd.DataFrame(rows)


def _to_uint8(chw: np.ndarray) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W, 3) or (H, W) uint8."""
    image = np.clip(np.round(np.asarray(chw, np.float32) * 255), 0, 255).astype(np.uint8)
    return image[0] if image.shape[0] == 1 else np.ascontiguousarray(image.transpose(1, 2, 0))


def trained_settings(run_dir: Path, task_dir: Path, preprocess_values: dict[str, Any] | None,
                     serving_values: dict[str, Any] | None = None) -> ServingSettings:
    """Serving settings of the model in ``run_dir`` trained on ``task_dir``.

    The input side and colour channel count come from the task's arrays (what the network
    really read), the rest from the ``preprocess`` values.

    Raises:
        DataError: no trained model in ``run_dir`` or unreadable arrays.
        ConfigError: invalid preprocess / serving values.
    """
    from components.training.data import load_split

    spec, _ = load_trained(Path(run_dir))
    colour_key = next((m for m in spec.inputs if m != "depth"), spec.inputs[0])
    part = load_split(task_dir, "val", (colour_key,)).parts[0]
    channels = int(part.shape[part.ndim - 3]) if colour_key != "depth" else 3
    return build_settings(spec, int(part.shape[-1]), channels, preprocess_values,
                          serving_values)


def model_file(run_dir: Path) -> Path:
    """``model.pt`` or ``model.pkl`` of a run folder.

    Raises:
        DataError: neither exists.
    """
    for name in (TORCH_FILE, ESTIMATOR_FILE):
        if (Path(run_dir) / name).is_file():
            return Path(run_dir) / name
    raise DataError(f"{run_dir}: no {TORCH_FILE} or {ESTIMATOR_FILE} (run the train stage)")


def log_serving_model(run_dir: Path, task_dir: Path, preprocess_values: dict[str, Any] | None,
                      serving_values: dict[str, Any] | None = None) -> str:
    """Log the raw-input serving model of ``run_dir`` to the ACTIVE MLflow run.

    Returns:
        ``runs:/<run_id>/serving``.

    Raises:
        DataError / ConfigError: see :func:`trained_settings`.
    """
    settings = trained_settings(run_dir, task_dir, preprocess_values, serving_values)
    # The contract also stays beside the trained model: the registry's model card reads it.
    settings.write(Path(run_dir) / SETTINGS_FILE)
    with _serving_model_parts(run_dir, task_dir, settings) as parts, _quiet_warnings():
        info = mlflow.pyfunc.log_model(name=SERVING_NAME, **parts)
    return f"runs:/{info.run_id}/{SERVING_NAME}"


def save_serving_model(run_dir: Path, task_dir: Path, preprocess_values: dict[str, Any] | None,
                       serving_values: dict[str, Any] | None, path: Path) -> Path:
    """Write the serving model of ``run_dir`` to the new folder ``path``, no tracking store
    needed: what ``mlflow models serve -m <path>`` serves, with the code of this checkout
    (a registered version serves with the code it was logged with).

    Raises:
        DataError / ConfigError: see :func:`trained_settings`.
    """
    settings = trained_settings(run_dir, task_dir, preprocess_values, serving_values)
    with _serving_model_parts(run_dir, task_dir, settings) as parts, _quiet_warnings():
        mlflow.pyfunc.save_model(path=str(path), **parts)
    return Path(path)


@contextlib.contextmanager
def _serving_model_parts(run_dir: Path, task_dir: Path, settings: ServingSettings
                         ) -> Iterator[dict[str, Any]]:
    """The pyfunc model's parts, for logging and saving alike (the settings file lives in a
    temporary folder until MLflow has copied it)."""
    import tempfile

    from components.models.contract import pinned_requirements

    example = example_request(task_dir, settings)
    with tempfile.TemporaryDirectory() as tmp:
        settings_path = settings.write(Path(tmp) / SETTINGS_FILE)
        yield {"python_model": FaceExpressionModel(),
               "artifacts": {MODEL_ARTIFACT: str(model_file(run_dir)),
                             SETTINGS_ARTIFACT: str(settings_path)},
               "code_paths": [str(CODE_DIR)],
               "pip_requirements": pinned_requirements(SERVING_REQUIREMENTS),
               "signature": signature(settings),
               "input_example": example,
               "metadata": {"arch": settings.spec.arch, "task": settings.spec.task,
                            "classes": settings.classes, "inputs": list(settings.spec.inputs),
                            "output": "faces"}}


@contextlib.contextmanager
def _quiet_warnings():
    with warnings.catch_warnings():
        # The pyfunc's predict has no type hints on purpose (the signature is explicit).
        warnings.filterwarnings("ignore", message=".*type hint.*")
        yield


def load_serving(uri: str) -> FaceExpressionModel:
    """Load a serving model (``runs:/``, ``models:/`` or a local folder) in process.

    Raises:
        DataError: the URI cannot be loaded or is not a ferops serving model.
    """
    try:
        with _download_folder(uri) as folder:
            pyfunc = mlflow.pyfunc.load_model(uri, dst_path=folder)
    except (MlflowException, OSError) as exc:
        raise DataError(f"{uri}: cannot load the model ({str(exc).splitlines()[0]})") from exc
    try:
        inner = pyfunc.unwrap_python_model()
    except MlflowException as exc:
        raise DataError(f"{uri}: not a ferops serving model (log it with "
                        "log_serving_model)") from exc
    if not isinstance(inner, FaceExpressionModel):
        raise DataError(f"{uri}: not a ferops serving model ({type(inner).__name__})")
    return inner


@contextlib.contextmanager
def _download_folder(uri: str) -> Iterator[str | None]:
    """Where MLflow copies a remote model (``models:/``, ``runs:/``, a server) while it loads.

    Left to itself, MLflow downloads into a fresh ``mkdtemp`` folder that nobody deletes: every
    ``ferops predict`` of a registered model would leave a copy of it (weights and code) in
    the temporary directory. The model is in memory once loaded, so the copy goes with the
    block. A local folder loads in place (``None``: no copy at all).
    """
    import tempfile
    from urllib.parse import urlparse

    if urlparse(uri).scheme in ("", "file"):
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="ferops-model-") as folder:
        yield folder


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` is a training run folder (``artifacts/train/<arch>``)."""
    return Path(path).is_dir() and any((Path(path) / n).is_file()
                                       for n in (TORCH_FILE, ESTIMATOR_FILE))


def run_task_dir(run_dir: Path, data_dir: Path | None) -> Path:
    """The preprocessed task folder (under ``data_dir``) a training run folder was fit on.

    Raises:
        DataError: no ``data_dir`` given (it fixes the input size).
    """
    from components.training.data import task_folder

    if data_dir is None:
        raise DataError(f"{run_dir}: a training run folder needs the preprocessed data "
                        "folder (--data) for its input size")
    spec, _ = load_trained(Path(run_dir))
    return Path(data_dir) / task_folder(spec.task)


def resolve_model(model: str, data_dir: Path | None = None,
                  preprocess_values: dict[str, Any] | None = None,
                  serving_values: dict[str, Any] | None = None) -> LoadedModel:
    """The model named by ``model``: an MLflow URI of a serving model (``models:/...``,
    ``runs:/...``, or its local folder), or a training run folder (``artifacts/train/<arch>``,
    whose settings then come from ``data_dir`` and the params values).

    Raises:
        DataError: nothing loadable at ``model``.
    """
    folder = Path(model)
    if is_run_folder(folder):
        task_dir = run_task_dir(folder, data_dir)
        settings = trained_settings(folder, task_dir, preprocess_values, serving_values)
        return load_model_file(model_file(folder), settings)
    inner = load_serving(model)
    if inner.loaded is None:  # pragma: no cover - load_context always sets it
        raise DataError(f"{model}: serving model did not load")
    return inner.loaded
