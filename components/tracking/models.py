"""Logging trained models to MLflow so that ``mlflow.pyfunc.load_model(uri)`` serves them.

Torch models go through the pytorch flavor. MLflow 3 saves them by default in the ``pt2``
format (``torch.export``): a traced graph that loads without the project's code and without
unpickling. Export specialises every dimension whose example size is 1, so the input example
is a batch of at least :data:`MIN_EXAMPLE` samples and the signature marks the batch axis as
``-1``; the logged model then accepts any batch size. Estimators are logged as a pyfunc
bundle (:class:`~components.tracking.pyfunc_models.EstimatorModel`), which unpickles them and
therefore needs ferops importable where it loads.

Requirements are given explicitly, pinned to the installed versions: MLflow's inference of
requirements re-imports the model in a subprocess, which costs tens of seconds per run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from components.models import ModelSpec, load_trained
from components.models.classifier import ESTIMATOR_FILE
from components.models.contract import pinned_requirements
from components.tracking.pyfunc_models import ESTIMATOR_ARTIFACT, EstimatorModel
from components.training.data import load_split

MODEL_NAME = "model"  # artifact name: the model URI is ``runs:/<run_id>/model``
MIN_EXAMPLE = 2  # batch size of the input example: 1 would freeze the batch axis in pt2
MAX_EXAMPLE = 4
LATENCY_REPEATS = 15  # timed batch-1 calls after one warm-up; the median is reported
TORCH_REQUIREMENTS: tuple[str, ...] = ("torch", "numpy")
ESTIMATOR_REQUIREMENTS: tuple[str, ...] = (
    "torch", "numpy", "scikit-learn", "joblib", "cloudpickle", "pandas",
)


@dataclass
class LoggedModel:
    """Where a logged model lives and what it was fed as an example."""

    model_uri: str  # runs:/<run_id>/model
    logged_model_uri: str  # models:/<model_id> (MLflow 3 logged-model entity)
    model_id: str | None
    flavor: str  # "pytorch" or "pyfunc"
    example: np.ndarray
    latency_ms: float  # median model-only milliseconds for one face (batch 1), this machine


def input_example(task_dir: Path, spec: ModelSpec, split: str = "val") -> np.ndarray:
    """A channel-stacked float32 batch of 2-4 real samples of ``split``, as the model reads.

    A one-sample split is repeated to reach :data:`MIN_EXAMPLE`.
    """
    data = load_split(task_dir, split, spec.inputs, grey=spec.grey)
    rows = data.rows(slice(0, min(MAX_EXAMPLE, len(data))))
    if len(rows) < MIN_EXAMPLE:
        rows = np.repeat(rows, MIN_EXAMPLE, axis=0)[:MIN_EXAMPLE]
    return np.ascontiguousarray(rows, dtype=np.float32)


def log_trained_model(run_dir: Path, task_dir: Path) -> LoggedModel:
    """Log the model saved in ``run_dir`` (model.pt or model.pkl) to the active run.

    Returns:
        The :class:`LoggedModel`; its ``model_uri`` loads with ``mlflow.pyfunc.load_model``.

    Raises:
        DataError: ``run_dir`` holds no trained model, or the data cannot be read.
    """
    spec, classifier = load_trained(Path(run_dir))
    example = input_example(task_dir, spec)
    net = classifier.network()
    if net is not None:  # one network: the pytorch flavor, loadable without ferops
        return log_torch_model(net, example, spec)
    return log_estimator_model(Path(run_dir) / ESTIMATOR_FILE, example, spec)


def log_torch_model(net: nn.Module, example: np.ndarray, spec: ModelSpec) -> LoggedModel:
    """Log a network (eval mode, one logits output) with a batch-agnostic signature."""
    import mlflow

    net = net.eval()
    with torch.no_grad():
        output = net(torch.from_numpy(example)).numpy()
        latency = batch1_latency_ms(lambda one: net(torch.from_numpy(one)), example)
    info = mlflow.pytorch.log_model(
        net,
        name=MODEL_NAME,
        signature=_signature(example, output),
        input_example=example,
        pip_requirements=pinned_requirements(TORCH_REQUIREMENTS),
        metadata=_metadata(spec, "logits"),
    )
    return _logged(info, "pytorch", example, latency)


def log_estimator_model(pickle_path: Path, example: np.ndarray, spec: ModelSpec) -> LoggedModel:
    """Log a classifier's ``model.pkl`` as a pyfunc bundle returning class probabilities."""
    import joblib
    import mlflow

    estimator = joblib.load(pickle_path)["estimator"]
    output = np.asarray(estimator.predict_proba(example))
    latency = batch1_latency_ms(estimator.predict_proba, example)
    info = mlflow.pyfunc.log_model(
        name=MODEL_NAME,
        python_model=EstimatorModel(),
        artifacts={ESTIMATOR_ARTIFACT: str(pickle_path)},
        signature=_signature(example, output),
        input_example=example,
        pip_requirements=pinned_requirements(ESTIMATOR_REQUIREMENTS),
        metadata=_metadata(spec, "probabilities"),
    )
    return _logged(info, "pyfunc", example, latency)


def batch1_latency_ms(predict: Callable[[np.ndarray], object], example: np.ndarray,
                      repeats: int = LATENCY_REPEATS) -> float:
    """Median wall time in ms of ``predict`` on one sample (model only, no face chain).

    It is what the registry gate's optional latency budget (``registry.max_latency_ms``)
    compares; measured where the model was trained, so it is a relative figure between
    candidates of one pipeline run, not a serving SLA. ``benchmarks/predict_latency.py``
    measures the full photo-to-label path.
    """
    one = np.ascontiguousarray(example[:1])
    predict(one)  # warm-up: lazy initialisation and allocator growth are not latency
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(one)
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times))


def _signature(example: np.ndarray, output: np.ndarray) -> Any:
    """Tensor signature with a free batch axis (-1) on input and output."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([TensorSpec(example.dtype, (-1, *example.shape[1:]))]),
        outputs=Schema([TensorSpec(output.dtype, (-1, *output.shape[1:]))]),
    )


def _metadata(spec: ModelSpec, output: str) -> dict[str, Any]:
    """What a consumer of the logged model needs to feed it and read its output."""
    return {
        "arch": spec.arch,
        "task": spec.task,
        "inputs": list(spec.inputs),
        "grey": spec.grey,
        "classes": list(spec.classes),
        "output": output,
    }


def _logged(info: Any, flavor: str, example: np.ndarray, latency_ms: float) -> LoggedModel:
    return LoggedModel(
        model_uri=f"runs:/{info.run_id}/{MODEL_NAME}",
        logged_model_uri=info.model_uri,
        model_id=getattr(info, "model_id", None),
        flavor=flavor,
        example=example,
        latency_ms=latency_ms,
    )
