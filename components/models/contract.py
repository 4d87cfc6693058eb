"""What every logged or served model shares, whoever logs or serves it.

Tracking logs models and serving loads them; both lean on these pieces and not on each
other: the single-output wrapper a pyfunc or ONNX graph needs and the pinned requirements a
logged model declares.
"""

from __future__ import annotations

from importlib import metadata

import torch
import torch.nn.functional as F
from torch import nn


def logits_of(out: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The logits of a network's output: networks that also return features (the two-stream
    CNN, C3D for EC-STFL) give ``(logits, features, ...)``; the rest the logits alone."""
    return out[0] if isinstance(out, tuple) else out


class LogitsOnly(nn.Module):
    """Forward that returns only the logits (pyfunc and ONNX need one output tensor)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return logits_of(self.model(x))


def tta_views(x: torch.Tensor, mirror: bool, shift: int) -> list[torch.Tensor]:
    """The test-time views of a batch whose last two axes are height and width.

    The batch itself; with ``shift`` > 0 four copies moved ``shift`` pixels towards each
    corner, the edge zero-filled as the training shift fills it; with ``mirror`` each of those
    mirrored left-right. Mirror and shift 2 on a 48 px face are the ten views of the 10-crop
    averaging the published FER2013 figures use (44 px crops at the corners and centre, and
    their mirrors), at the full size the network was trained on.
    """
    views = [x]
    if shift > 0:
        height, width = x.shape[-2:]
        padded = F.pad(x, (shift, shift, shift, shift))
        views += [padded[..., shift + dy : shift + dy + height, shift + dx : shift + dx + width]
                  for dy in (-shift, shift) for dx in (-shift, shift)]
    if mirror:
        views += [torch.flip(view, dims=[-1]) for view in views]
    return views


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
