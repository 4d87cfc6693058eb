"""On-the-fly training augmentation on whole batches: mirroring, shifts, small rotations and
zooms, random crops, random erasing and mixup.

Each sample's channels (depth, colour, 2-D colour stacked together) and every frame of a clip
get the SAME flip and shift, so modalities stay pixel-aligned (methods.md 1.9). Random draws
come from a caller-owned CPU generator, so a seeded epoch augments identically on resume and
on any device; the pixel work runs where the batch lives (a GPU batch never visits the
CPU). Every operation copies or interpolates whole tensors (no per-sample Python loop, which
on a GPU would launch work per sample), and the draws cross to a GPU
without waiting for it (``non_blocking``: a host-to-device copy from ordinary memory is
staged before the call returns, so the CPU tensor may go at once; a blocking copy would
make the CPU wait for every queued kernel at each step).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def mirror(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Flip a random half (probability ``p``) of the samples left-right.

    Works for NCHW and NTCHW: the width axis is last in both. Returns a new tensor.
    """
    flip = torch.rand(x.shape[0], generator=generator) < p
    if not bool(flip.any()):
        return x
    chosen = flip.to(x.device, non_blocking=True).view(-1, *([1] * (x.ndim - 1)))
    return torch.where(chosen, torch.flip(x, dims=[-1]), x)


def shift(x: torch.Tensor, generator: torch.Generator, max_shift: int) -> torch.Tensor:
    """Translate each sample by up to ``max_shift`` pixels in x and y, zero-filling the edge.

    One offset per sample, shared by all its channels and frames. Returns a new tensor.
    """
    if max_shift <= 0:
        return x
    n = x.shape[0]
    h, w = x.shape[-2], x.shape[-1]
    offsets = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator)
    # each sample's window in the padded map
    offsets = offsets.to(x.device, non_blocking=True) + max_shift
    flat = x.reshape(n, -1, h, w)
    padded = F.pad(flat, (max_shift, max_shift, max_shift, max_shift))
    out = _windows(padded, offsets[:, :1], offsets[:, 1:], h, w)
    return out.reshape(x.shape)


def _windows(
    flat: torch.Tensor, tops: torch.Tensor, lefts: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """Each sample's ``height`` x ``width`` window of ``flat`` (N, C, H, W), its top-left
    corner at ``tops``/``lefts`` (N, 1, on ``flat``'s device), in one gather for the batch:
    every channel of a sample shares its window."""
    device = flat.device
    rows = tops + torch.arange(height, device=device)  # (n, height)
    cols = lefts + torch.arange(width, device=device)  # (n, width)
    samples = torch.arange(flat.shape[0], device=device)[:, None, None, None]
    channels = torch.arange(flat.shape[1], device=device)[None, :, None, None]
    return flat[samples, channels, rows[:, None, :, None], cols[:, None, None, :]]


def rotate_scale(
    x: torch.Tensor, generator: torch.Generator, max_degrees: float, max_scale: float
) -> torch.Tensor:
    """Rotate each sample by up to ``max_degrees`` and zoom by a factor in
    ``[1 - max_scale, 1 + max_scale]`` about its centre (bilinear, zero outside).

    Faces in the wild are tilted and framed loosely; this teaches the net both without
    storing augmented copies. One transform per sample, shared by its channels and frames.
    """
    if max_degrees <= 0 and max_scale <= 0:
        return x
    n = x.shape[0]
    h, w = x.shape[-2], x.shape[-1]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(max_degrees)
    zoom = 1 + (torch.rand(n, generator=generator) * 2 - 1) * max_scale
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin, cos
    flat = x.reshape(n, -1, h, w).float()
    theta = theta.to(x.device, non_blocking=True)
    grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
    out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.to(x.dtype).reshape(x.shape)


def random_crop(x: torch.Tensor, generator: torch.Generator, size: int) -> torch.Tensor:
    """Cut a random ``size`` x ``size`` window out of each sample (one window per sample,
    shared by its channels and frames).

    Training on crops smaller than the faces the net is scored on shrinks every step's
    pixels by the ratio of the areas (40 of 48 px: 0.69 of them; the measured speed-up,
    benchmarks/results/train_width_baseline_cnn_crop.md, is 1.32-1.51x the images/s) while
    shifting the face inside the window; a net that pools globally then scores the whole
    face. ``size`` 0 returns ``x`` and draws nothing; a window as large as the images
    would crop nothing, so ``size`` must be smaller. Returns a new tensor.
    """
    if size <= 0:
        return x
    n = x.shape[0]
    h, w = x.shape[-2], x.shape[-1]
    if size >= min(h, w):
        raise ValueError(f"crop {size} px must be smaller than the {h}x{w} images")
    tops = torch.randint(0, h - size + 1, (n, 1), generator=generator)
    lefts = torch.randint(0, w - size + 1, (n, 1), generator=generator)
    out = _windows(x.reshape(n, -1, h, w), tops.to(x.device, non_blocking=True),
                   lefts.to(x.device, non_blocking=True), size, size)
    return out.reshape(*x.shape[:-2], size, size)


def random_erase(
    x: torch.Tensor,
    generator: torch.Generator,
    p: float,
    area: tuple[float, float] = (0.02, 0.2),
    aspect: tuple[float, float] = (0.3, 3.3),
) -> torch.Tensor:
    """Zero a random rectangle (``area`` share of the image, ``aspect`` ratio h/w) in a
    random ``p`` share of the samples (Zhong et al. 2020 random erasing).

    It mimics partial occlusion (hands, hair, glasses), so the net cannot lean on one face
    region alone. The same rectangle covers all channels and frames of a sample.
    """
    if p <= 0:
        return x
    n = x.shape[0]
    h, w = x.shape[-2], x.shape[-1]
    erase = torch.rand(n, generator=generator) < p
    share = area[0] + torch.rand(n, generator=generator) * (area[1] - area[0])
    log_ratio = math.log(aspect[0]) + torch.rand(n, generator=generator) * (
        math.log(aspect[1]) - math.log(aspect[0])
    )
    ratio = torch.exp(log_ratio)
    eh = torch.clamp((share * h * w * ratio).sqrt().round(), 1, h).long()
    ew = torch.clamp((share * h * w / ratio).sqrt().round(), 1, w).long()
    top = (torch.rand(n, generator=generator) * (h - eh + 1)).long()
    left = (torch.rand(n, generator=generator) * (w - ew + 1)).long()
    rows = torch.arange(h)[None, :]
    cols = torch.arange(w)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])
    mask = in_rows[:, :, None] & in_cols[:, None, :] & erase[:, None, None]
    mask = mask.to(x.device, non_blocking=True)
    flat = x.reshape(n, -1, h, w)
    out = flat.masked_fill(mask[:, None], 0.0)
    return out.reshape(x.shape)


def augment_batch(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    mirror_p: float,
    max_shift: int,
    max_degrees: float = 0.0,
    max_scale: float = 0.0,
    erase_p: float = 0.0,
    crop: int = 0,
) -> torch.Tensor:
    """Apply the configured augmentations in a fixed order: mirror, shift, rotate/zoom,
    crop, erase (so an erased rectangle's share is of the crop). Disabled ones draw no
    random numbers, so older settings replay unchanged."""
    if mirror_p > 0:
        x = mirror(x, generator, mirror_p)
    x = shift(x, generator, max_shift)
    x = rotate_scale(x, generator, max_degrees, max_scale)
    x = random_crop(x, generator, crop)
    return random_erase(x, generator, erase_p)


def mixup(
    x: torch.Tensor, generator: torch.Generator, alpha: float
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Blend each sample with another of the batch (Zhang et al. 2018 mixup).

    Returns the blended batch, the partner of each sample (a permutation of the batch) and
    the weight ``lam`` of the sample's own image, drawn from Beta(alpha, alpha) and folded
    to >= 0.5 so each blend's own label stays the larger share (the training accuracy then
    counts against it). The loss must blend the two labels by the same weight. Faces between
    two expressions give the late, low-rate epochs of a short schedule less to memorise.
    ``alpha`` <= 0 returns the batch unchanged with weight 1 and draws nothing, so runs
    without it replay unchanged.
    """
    n = x.shape[0]
    if alpha <= 0:
        return x, torch.arange(n, device=x.device), 1.0
    # torch has no Beta draw from a caller's generator: a seed drawn from it keeps the
    # weight deterministic per (seed, epoch, step).
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    lam = max(lam, 1.0 - lam)
    partner = torch.randperm(n, generator=generator).to(x.device, non_blocking=True)
    return lam * x + (1.0 - lam) * x[partner], partner, lam
