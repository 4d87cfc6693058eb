"""The reference 2-D CNN: a VGG-style network that is strong on 48x48 FER2013.

It is the planar model of seed 002, the default backbone for hierarchical grouping and the
network of the FER2013 accuracy benchmark, so it must be good on its own: pairs of
conv-BN-ReLU per block (small receptive fields stacked), four blocks that halve the map,
global average pooling (any input >= 32 px) and a dropout-regularised two-layer head.
``head_grid`` keeps a coarse layout of the last map instead (a face's aligned 48x48 crop puts
the mouth and the eyes in the same cells every time, which one global average discards).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

BASE_WIDTHS: tuple[int, ...] = (64, 128, 256, 512)
CONVS_PER_BLOCK = 2


def scaled(width: int, factor: float) -> int:
    """Scale a channel count by ``factor``, never below 4 channels."""
    return max(4, int(round(width * factor)))


def conv_bn_relu(in_ch: int, out_ch: int) -> list[nn.Module]:
    """A 3x3 'same' convolution, batch norm and ReLU (the conv has no bias: BN supplies it)."""
    return [
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    ]


class BaselineCNN(nn.Module):
    """VGG-ish CNN: 4 blocks of (conv-BN-ReLU) x 2 + max-pool, GAP, FC-ReLU-dropout-FC.

    Args:
        num_classes: output logits.
        in_channels: 1 for grey faces, 3 for RGB.
        width: multiplier on the 64-128-256-512 block widths.
        hidden: width of the hidden FC layer.
        dropout: dropout rate before each FC layer.
        block_dropout: spatial dropout after each block (0 disables it).
        channels: the blocks' widths, set one by one instead of by ``width`` (which must
            then stay 1.0). On a CPU the early blocks, at 48x48 and 24x24, are bound by
            memory traffic (batch norm and ReLU over large maps) and the late ones by
            arithmetic that runs well, so a net thin early and wide late buys capacity
            for less time than a uniform ``width``.
        block_convs: conv-BN-ReLU layers per block (default 2 each); one in the first
            block halves the costliest map's layers.
        head_grid: the last map is average-pooled to ``head_grid`` x ``head_grid`` cells
            and flattened into the head (1: global average pooling). At 48x48 four blocks
            leave a 3x3 map, so 3 keeps it whole: where in the face a feature fired reaches
            the classifier, for a wider first FC layer and next to no arithmetic.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        width: float = 1.0,
        hidden: int = 256,
        dropout: float = 0.5,
        block_dropout: float = 0.1,
        channels: Sequence[int] | None = None,
        block_convs: Sequence[int] | None = None,
        head_grid: int = 1,
    ) -> None:
        super().__init__()
        widths = block_widths(width, channels)
        convs = layer_counts(block_convs, len(widths))
        layers: list[nn.Module] = []
        prev = in_channels
        for out, count in zip(widths, convs, strict=True):
            layers += conv_bn_relu(prev, out)
            for _ in range(count - 1):
                layers += conv_bn_relu(out, out)
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
            if block_dropout > 0:
                layers.append(nn.Dropout2d(block_dropout))
            prev = out
        self.features = nn.Sequential(*layers)
        grid = checked_grid(head_grid)
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(prev * grid * grid, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits of shape (N, num_classes) for images (N, C, H, W)."""
        return self.head(torch.flatten(self.pool(self.features(x)), 1))


def block_widths(width: float, channels: Sequence[int] | None) -> list[int]:
    """The blocks' output channels: ``channels`` as given, or the base widths scaled.

    Raises:
        ValueError: both set (which one would win is a guess), no blocks, or a block
            under one channel.
    """
    if channels is None:
        return [scaled(base, width) for base in BASE_WIDTHS]
    if width != 1.0:
        raise ValueError(
            f"set width ({width}) or channels ({list(channels)}), not both: channels gives "
            "every block's width itself"
        )
    widths = [int(c) for c in channels]
    if not widths or min(widths) < 1:
        raise ValueError(f"channels must list at least one block of >= 1 channel, got {widths}")
    return widths


def checked_grid(head_grid: int) -> int:
    """``head_grid`` as an int >= 1, or a ValueError naming it (0 cells would pool nothing)."""
    if isinstance(head_grid, bool) or int(head_grid) != head_grid or head_grid < 1:
        raise ValueError(f"head_grid must be a whole number >= 1, got {head_grid!r}")
    return int(head_grid)


def layer_counts(block_convs: Sequence[int] | None, blocks: int) -> list[int]:
    """Conv layers per block: two each by default, else one count per block (each >= 1).

    Raises:
        ValueError: a count per block is not given, or one is under 1.
    """
    if block_convs is None:
        return [CONVS_PER_BLOCK] * blocks
    counts = [int(c) for c in block_convs]
    if len(counts) != blocks or min(counts) < 1:
        raise ValueError(
            f"block_convs must give {blocks} counts (one per block), each >= 1, got {counts}"
        )
    return counts
