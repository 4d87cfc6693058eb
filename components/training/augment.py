"""On-the-fly training augmentation on whole batches: mirroring and small shifts.

Each sample's channels (depth, colour, 2-D colour stacked together) and every frame of a clip
get the SAME flip and shift, so modalities stay pixel-aligned (methods.md 1.9). Random draws
come from a caller-owned generator, so a seeded epoch augments identically on resume.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mirror(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Flip a random half (probability ``p``) of the samples left-right.

    Works for NCHW and NTCHW: the width axis is last in both. Returns a new tensor.
    """
    flip = torch.rand(x.shape[0], generator=generator) < p
    if not bool(flip.any()):
        return x
    out = x.clone()
    out[flip] = torch.flip(x[flip], dims=[-1])
    return out


def shift(x: torch.Tensor, generator: torch.Generator, max_shift: int) -> torch.Tensor:
    """Translate each sample by up to ``max_shift`` pixels in x and y, zero-filling the edge.

    One offset per sample, shared by all its channels and frames. Returns a new tensor.
    """
    if max_shift <= 0:
        return x
    n = x.shape[0]
    h, w = x.shape[-2], x.shape[-1]
    offsets = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator)
    flat = x.reshape(n, -1, h, w)
    padded = F.pad(flat, (max_shift, max_shift, max_shift, max_shift))
    out = torch.empty_like(flat)
    for i in range(n):
        dy = max_shift + int(offsets[i, 0])
        dx = max_shift + int(offsets[i, 1])
        out[i] = padded[i, :, dy : dy + h, dx : dx + w]
    return out.reshape(x.shape)


def augment_batch(
    x: torch.Tensor, generator: torch.Generator, *, mirror_p: float, max_shift: int
) -> torch.Tensor:
    """Apply the configured augmentations in a fixed order (mirror, then shift)."""
    if mirror_p > 0:
        x = mirror(x, generator, mirror_p)
    return shift(x, generator, max_shift)
