"""A second spatio-temporal backbone for seed 004's claim 19: a small R(2+1)D network.

Tran et al. (2018) factor each 3x3x3 convolution into a 1x3x3 spatial convolution and a
3x1x1 temporal one with a non-linearity between them; residual blocks of such pairs make
R(2+1)D. This one keeps that structure at CPU size (four stages, one residual block each,
widths 64-128-256-512 scaled by ``width``) and ends like :class:`~components.models.c3d.C3D`
(global pool -> fc6 -> fc7 -> fc8 with dropout), so EC-STFL attaches to fc7 or fc6 in the
same way and the two backbones differ only in their convolutional trunk.
"""

from __future__ import annotations

import torch
from torch import nn

from components.models.baseline import scaled
from components.models.c3d import FEATURE_LAYERS

STAGE_WIDTHS: tuple[int, ...] = (64, 128, 256, 512)


class Conv2Plus1d(nn.Sequential):
    """1x3x3 spatial conv -> BN -> ReLU -> 3x1x1 temporal conv (the (2+1)D factorisation)."""

    def __init__(self, in_channels: int, out_channels: int, stride: tuple[int, int, int]):
        middle = out_channels  # a simple choice; the paper matches 3-D parameter counts
        super().__init__(
            nn.Conv3d(in_channels, middle, (1, 3, 3), stride=(1, stride[1], stride[2]),
                      padding=(0, 1, 1), bias=False),
            nn.BatchNorm3d(middle),
            nn.ReLU(inplace=True),
            nn.Conv3d(middle, out_channels, (3, 1, 1), stride=(stride[0], 1, 1),
                      padding=(1, 0, 0), bias=False),
        )


class ResidualBlock(nn.Module):
    """Two (2+1)D convolutions with BN, plus a shortcut (1x1x1 conv when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: tuple[int, int, int]):
        super().__init__()
        self.body = nn.Sequential(
            Conv2Plus1d(in_channels, out_channels, stride),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
            Conv2Plus1d(out_channels, out_channels, (1, 1, 1)),
            nn.BatchNorm3d(out_channels),
        )
        self.shortcut: nn.Module = nn.Identity()
        if in_channels != out_channels or stride != (1, 1, 1):
            self.shortcut = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm3d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class R2Plus1D(nn.Module):
    """Small R(2+1)D for clips shaped (N, T, C, H, W), with C3D's fc6-fc7-fc8 head.

    Args:
        num_classes: logits of fc8.
        in_channels: C of the clip frames.
        width: multiplier on the 64-128-256-512 stage widths (0.25 suits CPU).
        fc_width: width of fc6 and fc7 (the EC-STFL feature size).
        dropout: dropout after fc6 and after fc7.
        feature_layer: ``fc7`` or ``fc6``: whose post-ReLU activations
            ``forward(..., return_features=True)`` returns.

    Raises:
        ValueError: an unknown ``feature_layer``.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, width: float = 0.25,
                 fc_width: int = 512, dropout: float = 0.5, feature_layer: str = "fc7") -> None:
        super().__init__()
        if feature_layer not in FEATURE_LAYERS:
            raise ValueError(f"r2plus1d: feature_layer must be one of {FEATURE_LAYERS}, "
                             f"got {feature_layer!r}")
        self.feature_layer = feature_layer
        widths = [scaled(w, width) for w in STAGE_WIDTHS]
        self.stem = nn.Sequential(
            Conv2Plus1d(in_channels, widths[0], (1, 2, 2)),
            nn.BatchNorm3d(widths[0]),
            nn.ReLU(inplace=True),
        )
        blocks, prev = [], widths[0]
        for stage, out in enumerate(widths):
            stride = (1, 1, 1) if stage == 0 else (2, 2, 2)
            blocks.append(ResidualBlock(prev, out, stride))
            prev = out
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc6 = nn.Linear(prev, fc_width)
        self.fc7 = nn.Linear(fc_width, fc_width)
        self.fc8 = nn.Linear(fc_width, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Return fc8 logits, or (logits, post-ReLU features of ``feature_layer``).

        Raises:
            ValueError: ``x`` is not 5-D (N, T, C, H, W).
        """
        if x.dim() != 5:
            raise ValueError(f"R2Plus1D expects clips (N, T, C, H, W), got {tuple(x.shape)}")
        h = self.blocks(self.stem(x.permute(0, 2, 1, 3, 4)))
        fc6 = torch.relu(self.fc6(torch.flatten(self.pool(h), 1)))
        fc7 = torch.relu(self.fc7(self.dropout(fc6)))
        logits = self.fc8(self.dropout(fc7))
        if not return_features:
            return logits
        return logits, (fc7 if self.feature_layer == "fc7" else fc6)
