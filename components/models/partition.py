"""Seed 001 (BOE): the partition-convolution CNN.

A partition block convolves the whole map (where neighbouring regions exchange
information), cuts it into a grid of regions, and gives every region its own batch norm,
ReLU and convolution (unshared weights, zero padding at the region's own borders), then
stitches the regions back, so the block keeps the input's spatial size (methods.md 2.3).

For speed the per-region work is batched: regions are zero-padded to the largest region
size and stacked in the channel dimension, the per-region convolutions run as one grouped
convolution (groups = regions) and the per-region batch norm is a masked batch norm over
the stacked tensor, so the padding added for stacking never enters the statistics.
Padding a region with zeros up to the common size is the same as zero padding at the
region's border, which is what the per-region convolution needs anyway.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from components.models.baseline import scaled


def split_bounds(length: int, parts: int) -> list[tuple[int, int]]:
    """Integer split of ``range(length)`` into ``parts`` runs, as ``numpy.array_split`` does.

    The first ``length % parts`` runs are one longer. Returns (start, stop) pairs.
    """
    base, extra = divmod(length, parts)
    bounds, start = [], 0
    for i in range(parts):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


class RegionBatchNorm(nn.Module):
    """Batch norm with separate statistics and affine parameters for every region.

    Works on stacked regions (N, R, C, h, w) with a validity mask (R, h, w) so that the
    zeros used to pad smaller regions never enter the statistics.
    """

    def __init__(self, regions: int, channels: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(regions, channels))
        self.bias = nn.Parameter(torch.zeros(regions, channels))
        self.register_buffer("running_mean", torch.zeros(regions, channels))
        self.register_buffer("running_var", torch.ones(regions, channels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Normalise ``x`` (N, R, C, h, w) per (region, channel).

        ``mask`` (R, h, w) marks the valid cells when regions were padded to a common size;
        None means every cell is valid, which takes the fused batch-norm kernel.
        """
        if mask is None:
            n, r, c, h, w = x.shape
            out = F.batch_norm(
                x.reshape(n, r * c, h, w),
                self.running_mean.view(-1),  # views: the kernel updates the buffers in place
                self.running_var.view(-1),
                self.weight.reshape(-1),
                self.bias.reshape(-1),
                self.training,
                self.momentum,
                self.eps,
            )
            return out.reshape(n, r, c, h, w)
        m = mask[None, :, None].to(x.dtype)
        if self.training:
            count = m.sum(dim=(0, 3, 4)) * x.shape[0]  # (R, 1) valid cells per region
            mean = (x * m).sum(dim=(0, 3, 4)) / count
            centred = (x - mean[None, :, :, None, None]) * m
            var = (centred**2).sum(dim=(0, 3, 4)) / count
            with torch.no_grad():
                unbiased = var * count / (count - 1).clamp(min=1)
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(unbiased.detach(), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        scale = self.weight / torch.sqrt(var + self.eps)
        shift = self.bias - mean * scale
        return x * scale[None, :, :, None, None] + shift[None, :, :, None, None]


class PartitionBlock(nn.Module):
    """Full-image conv, then per-region BN -> ReLU -> conv (unshared), regions stitched back.

    Args:
        in_channels, out_channels: channels in and out of the block.
        grid: (rows, cols) of the partition, e.g. (4, 4) or (3, 1) for eyes/nose/mouth.
        kernel_size: odd kernel of both convolutions (stride 1, 'same' padding).
    """

    def __init__(
        self, in_channels: int, out_channels: int, grid: tuple[int, int], kernel_size: int = 3
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"partition block: kernel_size must be odd, got {kernel_size}")
        self.grid = (int(grid[0]), int(grid[1]))
        self.regions = self.grid[0] * self.grid[1]
        self.channels = out_channels
        self.full_conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.region_bn = RegionBatchNorm(self.regions, out_channels)
        self.region_conv = nn.Conv2d(
            self.regions * out_channels,
            self.regions * out_channels,
            kernel_size,
            padding=kernel_size // 2,
            groups=self.regions,
        )

    def region_slices(self, height: int, width: int) -> list[tuple[slice, slice]]:
        """The (rows, cols) slices of every region, row-major, for an H x W map."""
        rows = split_bounds(height, self.grid[0])
        cols = split_bounds(width, self.grid[1])
        return [(slice(*r), slice(*c)) for r in rows for c in cols]

    def region_parameters(self, region: int) -> dict[str, torch.Tensor]:
        """Views of the parameters that belong to ``region`` alone (for tests and inspection)."""
        c = self.channels
        return {
            "bn_weight": self.region_bn.weight[region],
            "bn_bias": self.region_bn.bias[region],
            "conv_weight": self.region_conv.weight[region * c : (region + 1) * c],
            "conv_bias": self.region_conv.bias[region * c : (region + 1) * c],
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return a map (N, out_channels, H, W) of the input's spatial size."""
        if x.shape[-2] < self.grid[0] or x.shape[-1] < self.grid[1]:
            raise ValueError(f"partition block: input {tuple(x.shape[-2:])} smaller than grid")
        feats = self.full_conv(x)
        n, c, height, width = feats.shape
        gr, gc = self.grid
        if height % gr == 0 and width % gc == 0:
            # equal regions: a reshape stacks them without padding, and stitching inverts it
            h, w = height // gr, width // gc
            regions = feats.reshape(n, c, gr, h, gc, w).permute(0, 2, 4, 1, 3, 5)
            act = torch.relu(self.region_bn(regions.reshape(n, self.regions, c, h, w)))
            out = self.region_conv(act.reshape(n, self.regions * c, h, w))
            out = out.reshape(n, gr, gc, c, h, w).permute(0, 3, 1, 4, 2, 5)
            return out.reshape(n, c, height, width)
        return self._forward_padded(feats)

    def _forward_padded(self, feats: torch.Tensor) -> torch.Tensor:
        """Unequal regions: zero-pad each to the largest, mask the padding out of BN."""
        n, c, height, width = feats.shape
        slices = self.region_slices(height, width)
        hmax = max(s[0].stop - s[0].start for s in slices)
        wmax = max(s[1].stop - s[1].start for s in slices)
        stacked, masks = [], []
        for rows, cols in slices:
            region = feats[:, :, rows, cols]
            pad_h, pad_w = hmax - region.shape[-2], wmax - region.shape[-1]
            stacked.append(F.pad(region, (0, pad_w, 0, pad_h)))
            mask = torch.zeros(hmax, wmax, dtype=torch.bool, device=feats.device)
            mask[: region.shape[-2], : region.shape[-1]] = True
            masks.append(mask)
        regions = torch.stack(stacked, dim=1)  # (N, R, C, hmax, wmax)
        mask = torch.stack(masks)
        act = torch.relu(self.region_bn(regions, mask)) * mask[None, :, None]
        out = self.region_conv(act.reshape(n, self.regions * c, hmax, wmax))
        out = out.reshape(n, self.regions, c, hmax, wmax)
        return self._stitch(out, slices)

    def _stitch(self, out: torch.Tensor, slices: list[tuple[slice, slice]]) -> torch.Tensor:
        """Crop every region to its true size and put it back in its grid position."""
        rows_out = []
        for r in range(self.grid[0]):
            row = []
            for col in range(self.grid[1]):
                k = r * self.grid[1] + col
                rs, cs = slices[k]
                row.append(out[:, k, :, : rs.stop - rs.start, : cs.stop - cs.start])
            rows_out.append(torch.cat(row, dim=3))
        return torch.cat(rows_out, dim=2)

def partition_block_parameters(in_channels: int, out_channels: int, grid: tuple[int, int],
                               kernel_size: int = 3) -> int:
    """Trainable parameters of a :class:`PartitionBlock` (full conv, per-region BN and conv)."""
    regions = int(grid[0]) * int(grid[1])
    k2 = kernel_size * kernel_size
    full = in_channels * out_channels * k2 + out_channels
    return full + regions * (2 * out_channels + out_channels * out_channels * k2 + out_channels)


class PlainBlock(nn.Module):
    """The partition block's ordinary-convolution twin (claim 6's ablation): conv -> BN ->
    ReLU -> conv with weights shared over the whole map, its hidden width chosen so that the
    block has as many parameters as the partition block it replaces.

    Args:
        in_channels, out_channels: channels in and out (as the partition block's).
        grid: the replaced block's partition grid (only its parameter count is matched).
        kernel_size: odd kernel of both convolutions.
    """

    def __init__(self, in_channels: int, out_channels: int, grid: tuple[int, int],
                 kernel_size: int = 3) -> None:
        super().__init__()
        k2 = kernel_size * kernel_size
        target = partition_block_parameters(in_channels, out_channels, grid, kernel_size)
        # params(h) = in*h*k2 + h (conv bias) + 2h (BN) + h*out*k2 + out
        hidden = round((target - out_channels) / (in_channels * k2 + 3 + out_channels * k2))
        self.hidden = max(1, int(hidden))
        pad = kernel_size // 2
        self.full_conv = nn.Conv2d(in_channels, self.hidden, kernel_size, padding=pad)
        self.bn = nn.BatchNorm2d(self.hidden)
        self.conv = nn.Conv2d(self.hidden, out_channels, kernel_size, padding=pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return a map (N, out_channels, H, W) of the input's spatial size."""
        return self.conv(torch.relu(self.bn(self.full_conv(x))))


BLOCK_KINDS: tuple[str, ...] = ("partition", "plain")
ORDERS: tuple[str, ...] = ("standard", "swapped")


def _block(kind: str, in_channels: int, out_channels: int, grid: tuple[int, int]) -> nn.Module:
    if kind == "partition":
        return PartitionBlock(in_channels, out_channels, grid)
    return PlainBlock(in_channels, out_channels, grid)


class PartitionCNN(nn.Module):
    """Seed 001 network: stem -> [4x4 PC] -> 4x4 PC -> 3x1 PC -> BN-ReLU-1x1 conv -> GAP.

    Args:
        num_classes: categories (the 1x1 conv outputs one map per category).
        in_channels: 1 for grey faces.
        width: multiplier on the 32 / 32 / 64 / 128 reference widths.
        extra_block: include the optional third (first-in-order) 4x4 block (claim 8).
        dropout: dropout before the head convolution (0 disables it).
        conv: ``partition``, or ``plain`` for the twin whose every block is a
            :class:`PlainBlock` with the same parameter count (claim 6).
        order: ``standard`` (4x4 then 3x1) or ``swapped`` (3x1 then 4x4; claim 6).

    Raises:
        ValueError: an unknown ``conv`` or ``order``.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        width: float = 1.0,
        extra_block: bool = True,
        dropout: float = 0.0,
        conv: str = "partition",
        order: str = "standard",
    ) -> None:
        super().__init__()
        if conv not in BLOCK_KINDS:
            raise ValueError(f"partition_cnn: conv must be one of {BLOCK_KINDS}, got {conv!r}")
        if order not in ORDERS:
            raise ValueError(f"partition_cnn: order must be one of {ORDERS}, got {order!r}")
        stem, third, first, second = (scaled(w, width) for w in (32, 32, 64, 128))
        grids = [(4, 4), (3, 1)] if order == "standard" else [(3, 1), (4, 4)]
        self.stem = nn.Conv2d(in_channels, stem, 3, padding=1)
        self.third = _block(conv, stem, third, (4, 4)) if extra_block else None
        self.first = _block(conv, third if extra_block else stem, first, grids[0])
        self.second = _block(conv, first, second, grids[1])
        self.head = nn.Sequential(
            nn.BatchNorm2d(second),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Conv2d(second, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (N, num_classes): GAP over the per-category maps of the head."""
        h = self.stem(x)
        if self.third is not None:
            h = self.third(h)
        h = self.second(self.first(h))
        return self.head(h).mean(dim=(2, 3))
