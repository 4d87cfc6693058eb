"""ONNX export of a serving model's network, and an onnxruntime backend for the predictor.

Only the torch network goes to ONNX; detection, alignment and the intensity chain stay in
Python (they are OpenCV/numpy calls, identical for both runtimes), so ``serving.json`` is
written beside the ``.onnx`` file and ``ferops predict --runtime onnx`` runs the same raw-input
chain. Estimators (``svm_fusion``, ``hierarchical``) hold scikit-learn parts that have no
faithful ONNX form here, so exporting them is refused with a :class:`DataError`.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from components.errors import DataError
from components.serving.predictor import Backend, Predictor, softmax
from components.serving.pyfunc import LoadedModel
from components.serving.settings import SETTINGS_FILE, ServingSettings, read_settings

log = logging.getLogger(__name__)

INPUT_NAME = "faces"
OUTPUT_NAME = "logits"
MAX_BATCH = 4096  # upper bound of the dynamic batch axis
OPSET = 18


class WindowMaxPool(nn.Module):
    """Adaptive max pooling written as static window slices, which the ONNX exporter knows.

    ``torch.onnx`` (dynamo) has no translation for ``adaptive_max_pool2d/3d``. Adaptive
    pooling's windows are ``[floor(i*n/k), ceil((i+1)*n/k))`` per axis; with the spatial size
    fixed at export (only the batch axis is dynamic) they are constants, so slicing and
    ``amax`` give the identical result.
    """

    def __init__(self, output_size: tuple[int, ...]) -> None:
        super().__init__()
        self.output_size = tuple(int(v) for v in output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = len(self.output_size)
        spatial = x.shape[-dims:]
        windows = [
            [(math.floor(i * n / k), math.ceil((i + 1) * n / k)) for i in range(k)]
            for n, k in zip(spatial, self.output_size, strict=True)
        ]
        return self._pool(x, windows, x.ndim - dims)

    def _pool(self, x: torch.Tensor, windows: list, axis: int) -> torch.Tensor:
        if not windows:
            return x
        cells = [self._pool(x.narrow(axis, lo, hi - lo).amax(dim=axis, keepdim=True),
                            windows[1:], axis + 1) for lo, hi in windows[0]]
        return torch.cat(cells, dim=axis)


def exportable(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with adaptive max pooling swapped for :class:`WindowMaxPool`."""
    model = copy.deepcopy(model).eval()
    for name, child in list(model.named_modules()):
        if isinstance(child, nn.AdaptiveMaxPool2d | nn.AdaptiveMaxPool3d):
            size = child.output_size
            dims = 2 if isinstance(child, nn.AdaptiveMaxPool2d) else 3
            size = (size,) * dims if isinstance(size, int) else tuple(size)
            if any(v is None for v in size):
                raise DataError(f"{name}: adaptive pooling with a free output size cannot be "
                                "exported")
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            setattr(parent, name.rsplit(".", 1)[-1], WindowMaxPool(size))
    return model


def settings_path(onnx_path: Path) -> Path:
    """Where the settings of ``model.onnx`` live: ``model.serving.json`` beside it."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(f"{onnx_path.stem}.{SETTINGS_FILE}")


def export_onnx(loaded: LoadedModel, out: Path) -> Path:
    """Write the network of ``loaded`` as ONNX with a dynamic batch axis, plus its settings.

    Returns:
        The ``.onnx`` path.

    Raises:
        DataError: the model is not a single network, or the export fails.
    """
    spec = loaded.settings.spec
    network = loaded.classifier.network()
    if network is None:
        raise DataError(f"architecture {spec.arch}: not a single network (it has scikit-learn "
                        "parts), so it cannot be exported to ONNX; serve it with --runtime torch")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    net = exportable(network)
    example = torch.from_numpy(example_batch(loaded.settings, 2))
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    for name in ("onnx_ir", "onnxscript"):  # their INFO lines describe internal passes
        logging.getLogger(name).setLevel(logging.WARNING)
    # The exporter warns, for every export, that torchvision's detection ops (nms, roi_align,
    # ...) cannot be registered: no ferops network uses them and torchvision is not a
    # dependency, so only errors of that registry are worth showing.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    try:
        # The exporter prints its progress on stdout; the CLI's output is the result line.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            # torch's own pytree code trips its LeafSpec deprecation while exporting.
            warnings.filterwarnings("ignore", category=FutureWarning,
                                    message=r".*isinstance\(treespec, LeafSpec\).*")
            torch.onnx.export(
                net, (example,), str(out), dynamo=True, input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch},),
                external_data=False, opset_version=OPSET,
            )
    except Exception as exc:  # noqa: BLE001 - any exporter failure is one clear line
        raise DataError(f"architecture {spec.arch}: ONNX export failed "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc
    loaded.settings.write(settings_path(out))
    log.debug("wrote %s (%s, dynamic batch)", out, spec.arch)  # the CLI prints the result
    return out


def example_batch(settings: ServingSettings, n: int, seed: int = 0) -> np.ndarray:
    """A float32 batch of ``n`` random inputs of the model's shape (tracing and benchmarks)."""
    channels = settings.spec.in_channels
    shape = (n, channels, settings.size, settings.size)
    if settings.is_video:
        shape = (n, settings.preprocess.clip_frames, channels, settings.size, settings.size)
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def onnx_backend(onnx_path: Path, threads: int = 0) -> Backend:
    """Probabilities from an ONNX network run by onnxruntime on the CPU.

    Raises:
        DataError: the file is missing or not a loadable ONNX model.
    """
    import onnxruntime as ort

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise DataError(f"{onnx_path}: ONNX model not found (run `ferops export onnx`)")
    options = ort.SessionOptions()
    # Idle worker threads must sleep, not spin: in serving they share the cores with the
    # decoding and face detection of the next photo.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(onnx_path), options,
                                       providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise DataError(f"{onnx_path}: not a loadable ONNX model ({exc})") from exc
    name = session.get_inputs()[0].name

    def run(batch: np.ndarray) -> np.ndarray:
        logits = session.run(None, {name: np.ascontiguousarray(batch, dtype=np.float32)})[0]
        return softmax(logits)

    run.session = session  # type: ignore[attr-defined]  # benchmarks time the raw session
    return run


def onnx_predictor(onnx_path: Path, threads: int = 0) -> Predictor:
    """A :class:`Predictor` on an exported model and the settings written beside it.

    Raises:
        DataError: the model or its ``.serving.json`` is missing or unreadable.
    """
    settings = read_settings(settings_path(onnx_path))
    return Predictor(settings, onnx_backend(onnx_path, threads))
