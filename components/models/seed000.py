"""Seed 000 (ArcSoft US 11,023,715 B2) networks, with the layer counts the patent states.

* ``fusion_early`` (NN1, variant A): 4 conv, 4 down-sampling, 1 dropout, 2 FC on the
  7-channel stack depth + 3-D colour + 2-D colour.
* ``depth_cnn`` (NN2, variant B): 3 conv, 3 down-sampling, 1 dropout, 2 FC.
* ``color_cnn`` (NN3, variant B): the NN1 stack on the 3-D colour image.
* ``fusion_twostream`` (NN4, variant C): 1 segmentation (slice) layer, 8 conv, 8
  down-sampling, 2 dropout, 5 FC on the 4-channel RGB-D stack.

The patent gives counts only; sizes follow methods.md 1.6-1.8 (5x5 then 3x3 convs,
32/64/128/256 channels). So that any input >= 32 px works, the last down-sampling layer of
each stack is an adaptive max-pool to a ``grid`` x ``grid`` map: it *is* one of the counted
down-sampling layers (not an extra one), and at 48x48 input with grid 3 it is exactly 2x2.
"""

from __future__ import annotations

import torch
from torch import nn

from components.models.baseline import scaled

DOWNSAMPLING = (nn.MaxPool2d, nn.AdaptiveMaxPool2d)
CONV_WIDTHS: tuple[int, ...] = (32, 64, 128, 256)


class SliceLayer(nn.Module):
    """The seed 000 'segmentation layer': split a stacked input back into its modalities.

    ``sizes`` are the channel counts of the parts in order, e.g. (1, 3) for depth + RGB.
    Returns a tuple of tensors, one per part.
    """

    def __init__(self, sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.sizes = tuple(int(s) for s in sizes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Split ``x`` (N, sum(sizes), H, W) along channels."""
        if x.shape[1] != sum(self.sizes):
            raise ValueError(f"SliceLayer expects {sum(self.sizes)} channels, got {x.shape[1]}")
        return tuple(torch.split(x, self.sizes, dim=1))

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}"


def conv_stack(
    in_channels: int, n_conv: int, width: float, grid: int, batch_norm: bool
) -> tuple[nn.Sequential, int]:
    """``n_conv`` x (conv -> [BN] -> ReLU -> down-sample); the last down-sample is adaptive.

    Returns the stack and its output channel count.
    """
    layers: list[nn.Module] = []
    prev = in_channels
    for i in range(n_conv):
        out = scaled(CONV_WIDTHS[i], width)
        kernel = 5 if i == 0 else 3
        layers.append(nn.Conv2d(prev, out, kernel, padding=kernel // 2, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU(inplace=True))
        last = i == n_conv - 1
        layers.append(nn.AdaptiveMaxPool2d(grid) if last else nn.MaxPool2d(2, ceil_mode=True))
        prev = out
    return nn.Sequential(*layers), prev


class PatentCNN(nn.Module):
    """conv stack -> FC -> ReLU -> dropout -> FC: NN1, NN2 and NN3 of seed 000.

    The second FC gives the class scores whose softmax the SVM of variant B fuses.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        n_conv: int,
        fc_width: int,
        width: float = 1.0,
        dropout: float = 0.5,
        grid: int = 3,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.features, out = conv_stack(in_channels, n_conv, width, grid, batch_norm)
        self.fc1 = nn.Linear(out * grid * grid, fc_width)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(fc_width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (N, num_classes) (the second FC output before softmax)."""
        h = torch.flatten(self.features(x), 1)
        return self.fc2(self.dropout(torch.relu(self.fc1(h))))


def fusion_early(num_classes: int, in_channels: int = 7, **kwargs) -> PatentCNN:
    """NN1 (variant A): 4 conv, 4 down-sampling, 1 dropout, 2 FC (FC width 512)."""
    kwargs.setdefault("fc_width", 512)
    return PatentCNN(num_classes, in_channels, n_conv=4, **kwargs)


def depth_cnn(num_classes: int, in_channels: int = 1, **kwargs) -> PatentCNN:
    """NN2 (variant B, depth): 3 conv, 3 down-sampling, 1 dropout, 2 FC (FC width 256)."""
    kwargs.setdefault("fc_width", 256)
    return PatentCNN(num_classes, in_channels, n_conv=3, **kwargs)


def color_cnn(num_classes: int, in_channels: int = 3, **kwargs) -> PatentCNN:
    """NN3 (variant B, colour): 4 conv, 4 down-sampling, 1 dropout, 2 FC (FC width 512)."""
    kwargs.setdefault("fc_width", 512)
    return PatentCNN(num_classes, in_channels, n_conv=4, **kwargs)


class _Stream(nn.Module):
    """One NN4 stream: 4 x (conv -> down-sample), then FC -> ReLU -> dropout -> FC."""

    def __init__(
        self, in_channels: int, width: float, grid: int, fc_width: int, out_width: int,
        dropout: float, batch_norm: bool,
    ) -> None:
        super().__init__()
        self.features, out = conv_stack(in_channels, 4, width, grid, batch_norm)
        self.fc1 = nn.Linear(out * grid * grid, fc_width)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(fc_width, out_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.flatten(self.features(x), 1)
        return self.fc2(self.dropout(torch.relu(self.fc1(h))))


class TwoStreamCNN(nn.Module):
    """NN4 (variant C): slice -> depth stream + colour stream -> concat -> fusion FC.

    Counts: 1 slice, 8 conv, 8 down-sampling, 2 dropout, 5 FC (2 per stream + fusion).
    ``depth_channels`` says where the slice cuts the input (depth first, then colour).

    ``stream_dropout`` (0 = off, the patent's network) is the share of training samples
    whose fusion layer sees one stream only, the other's outputs zeroed (which one: either
    with equal odds). Trained jointly, a two-stream net can lean on whichever stream lowers
    the loss first and leave the other under-trained; dropping streams makes each one
    answer on its own. Off at evaluation, so it adds no layer and changes no output there.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 4,
        depth_channels: int = 1,
        width: float = 1.0,
        fc_width: int = 512,
        stream_width: int = 128,
        dropout: float = 0.5,
        grid: int = 3,
        batch_norm: bool = False,
        stream_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= stream_dropout <= 1.0:
            raise ValueError(f"stream_dropout={stream_dropout} must lie in [0, 1]")
        self.stream_dropout = float(stream_dropout)
        if not 0 < depth_channels < in_channels:
            raise ValueError(
                f"fusion_twostream: depth_channels={depth_channels} must lie in "
                f"1..{in_channels - 1} for {in_channels} input channels"
            )
        self.slice = SliceLayer((depth_channels, in_channels - depth_channels))
        args = (width, grid, fc_width, stream_width, dropout, batch_norm)
        self.depth_stream = _Stream(depth_channels, *args)
        self.color_stream = _Stream(in_channels - depth_channels, *args)
        self.fusion = nn.Linear(2 * stream_width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (N, num_classes) for the stacked (N, depth + colour, H, W) input."""
        depth, color = self.slice(x)
        depth_out, color_out = self.depth_stream(depth), self.color_stream(color)
        if self.training and self.stream_dropout > 0:
            depth_out, color_out = drop_streams(depth_out, color_out, self.stream_dropout)
        joined = torch.cat([depth_out, color_out], dim=1)
        return self.fusion(torch.relu(joined))


def drop_streams(
    first: torch.Tensor, second: torch.Tensor, rate: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero one of the two streams' outputs (N, F) for a ``rate`` share of the samples, the
    dropped stream drawn with equal odds per sample; never both. Draws from torch's RNG, so a
    seeded run repeats its draws."""
    n = first.shape[0]
    dropped = torch.rand(n, device=first.device) < rate
    first_dropped = torch.rand(n, device=first.device) < 0.5
    keep_first = ~(dropped & first_dropped)
    keep_second = ~(dropped & ~first_dropped)
    return (first * keep_first.unsqueeze(1).to(first.dtype),
            second * keep_second.unsqueeze(1).to(second.dtype))


# ITU-R BT.601 luma weights: the grey image a colour camera gives in place of depth.
LUMA = (0.299, 0.587, 0.114)


class LumaTwoStreamCNN(TwoStreamCNN):
    """The colour-only twin of NN4 (claims 1-3): the same two streams and head, the depth
    stream fed the colour image's luminance instead of a depth map, so the twin has exactly
    NN4's capacity and differs only in what the first stream sees.

    Takes the 3-channel colour image; the other arguments are :class:`TwoStreamCNN`'s.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, **kwargs) -> None:
        if in_channels != 3:
            raise ValueError(f"fusion_twostream_rgb reads RGB (3 channels), got {in_channels}")
        kwargs.pop("depth_channels", None)
        super().__init__(num_classes, in_channels=4, depth_channels=1, **kwargs)
        self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (N, num_classes) for colour images (N, 3, H, W)."""
        grey = (x * self.luma).sum(dim=1, keepdim=True)
        return super().forward(torch.cat([grey, x], dim=1))


def fusion_early_rgb(num_classes: int, in_channels: int = 6, **kwargs) -> PatentCNN:
    """The colour-only twin of NN1 (claims 1-3): NN1's layers on the colour and 2-D colour
    images without the depth channel (one input channel fewer, the rest identical)."""
    return fusion_early(num_classes, in_channels, **kwargs)


def count_layers(model: nn.Module) -> dict[str, int]:
    """Count the layer kinds the seed 000 claims name, for tests and model cards.

    Returns a dict with keys conv, downsampling, dropout, fc, slice.
    """
    modules = list(model.modules())
    return {
        "conv": sum(isinstance(m, nn.Conv2d) for m in modules),
        "downsampling": sum(isinstance(m, DOWNSAMPLING) for m in modules),
        "dropout": sum(isinstance(m, nn.Dropout) for m in modules),
        "fc": sum(isinstance(m, nn.Linear) for m in modules),
        "slice": sum(isinstance(m, SliceLayer) for m in modules),
    }
