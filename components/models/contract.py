"""What every logged or served model shares, whoever logs or serves it.

Tracking logs models and serving loads them; both lean on these pieces and not on each
other: the single-output wrapper a pyfunc or ONNX graph needs and the pinned requirements a
logged model declares.
"""

from __future__ import annotations

from importlib import metadata

import torch
from torch import nn


class LogitsOnly(nn.Module):
    """Forward that returns only the logits (pyfunc and ONNX need one output tensor)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out[0] if isinstance(out, tuple) else out


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
