"""A small residual network for 48x48 faces (ResNet-18's layout, sized for a CPU budget).

Not from the patents: a zoo entry for capacity per unit of time. The published from-scratch
FER2013 ResNet-18 (73.70 % with 10-crop averaging) reads the 48x48 face at full resolution
in its first stage; on a CPU the 48x48 maps are the dearest (batch norm and ReLU over large
maps are bound by memory traffic, ``train_width_baseline_cnn_bf16_profile.md``), so here one
stem convolution reads the full face and a max-pool hands 24x24 maps to the residual stages.
Identity shortcuts let a deeper stack of 3x3 convolutions train in the few epochs a budget
buys; each block's last batch norm starts at zero, so every block begins as the identity
(Goyal et al. 2017), which steadies the first large-learning-rate steps of a one-cycle run.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from components.models.baseline import block_widths, layer_counts

DEFAULT_BLOCKS = 2  # residual blocks per stage, ResNet-18's


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a shortcut (a strided 1x1 conv-BN where the shape changes)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
        )
        nn.init.zeros_(self.body[-1].weight)  # the block starts as its shortcut
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU(body(x) + shortcut(x))."""
        return self.relu(self.body(x) + self.shortcut(x))


class ResNetCNN(nn.Module):
    """Stem conv-BN-ReLU, max-pool, four stages of residual blocks, GAP, dropout, FC.

    Args:
        num_classes: output logits.
        in_channels: 1 for grey faces, 3 for RGB.
        width: multiplier on the 64-128-256-512 stage widths (the stem has the first's).
        dropout: dropout rate before the classifier.
        channels: the stages' widths, set one by one instead of by ``width`` (which must
            then stay 1.0), as ``baseline_cnn`` takes them.
        blocks: residual blocks per stage (default 2 each, ResNet-18's); every stage after
            the first halves the map in its first block.
        stem_pool: max-pool the stem's output (48x48 to 24x24) before the first stage; off,
            the first stage runs at full resolution, as the published ResNet-18 did.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        width: float = 1.0,
        dropout: float = 0.2,
        channels: Sequence[int] | None = None,
        blocks: Sequence[int] | None = None,
        stem_pool: bool = True,
    ) -> None:
        super().__init__()
        widths = block_widths(width, channels)
        counts = stage_blocks(blocks, len(widths))
        stem: list[nn.Module] = [
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        if stem_pool:
            stem.append(nn.MaxPool2d(2, ceil_mode=True))
        stages: list[nn.Module] = []
        prev = widths[0]
        for index, (out, count) in enumerate(zip(widths, counts, strict=True)):
            for block in range(count):
                stride = 2 if index > 0 and block == 0 else 1
                stages.append(BasicBlock(prev, out, stride))
                prev = out
        self.features = nn.Sequential(*stem, *stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(prev, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits of shape (N, num_classes) for images (N, C, H, W)."""
        return self.head(torch.flatten(self.pool(self.features(x)), 1))


def stage_blocks(blocks: Sequence[int] | None, stages: int) -> list[int]:
    """Residual blocks per stage: two each by default, else one count (>= 1) per stage.

    Raises:
        ValueError: a count per stage is not given, or one is under 1.
    """
    if blocks is None:
        return [DEFAULT_BLOCKS] * stages
    try:
        return layer_counts(blocks, stages)
    except ValueError:
        raise ValueError(f"blocks must give {stages} counts (one per stage), each >= 1, "
                         f"got {list(blocks)}") from None
