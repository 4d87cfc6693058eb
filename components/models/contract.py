"""What every logged or served model shares, whoever logs or serves it.

Tracking logs models and serving loads them; both lean on these pieces and not on each
other: the single-output wrapper a pyfunc or ONNX graph needs, the split of a
channel-stacked batch back into modalities (the estimators' input), and the pinned
requirements a logged model declares.
"""

from __future__ import annotations

from importlib import metadata

import numpy as np
import torch
from torch import nn

from components.errors import DataError


class LogitsOnly(nn.Module):
    """Forward that returns only the logits (pyfunc and ONNX need one output tensor)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out[0] if isinstance(out, tuple) else out


def split_channels(batch: np.ndarray, modalities: list[tuple[str, int]]) -> dict[str, np.ndarray]:
    """Cut a channel-stacked batch into ``{modality: array}`` (the inverse of stacking).

    Raises:
        DataError: the batch is not 4-D/5-D or its channels do not add up.
    """
    if batch.ndim not in (4, 5):
        raise DataError(f"estimator input: expected NCHW or NTCHW, got shape {batch.shape}")
    axis = batch.ndim - 3
    expected = sum(channels for _, channels in modalities)
    if batch.shape[axis] != expected:
        raise DataError(
            f"estimator input: {batch.shape[axis]} channels, expected {expected} "
            f"({', '.join(f'{n}={c}' for n, c in modalities)})"
        )
    bounds = np.cumsum([0] + [channels for _, channels in modalities])
    return {
        name: np.take(batch, np.arange(bounds[i], bounds[i + 1]), axis=axis)
        for i, (name, _) in enumerate(modalities)
    }


def pinned_requirements(distributions: tuple[str, ...]) -> list[str]:
    """``name==version`` of the installed distributions (local tags such as ``+cpu`` dropped)."""
    pins = []
    for name in distributions:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        pins.append(f"{name}=={version.split('+')[0]}")
    return pins
