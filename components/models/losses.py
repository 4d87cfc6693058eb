"""Seed 004 EC-STFL loss and the joint objective L = CE + lambda * EC-STFL.

EC-STFL (claim 3, methods.md 5.2) is computed per mini-batch of features x_i:

    L = sum_i  [ sum_{j in N(x_i)} ||x_i - x_j|| / |N(x_i)| ]
             / [ sum_{j not in N(x_i)} ||x_i - x_j|| / |N(x_j)| ]

where N(x_i) are the batch samples sharing x_i's label, self included. The denominator
divides by the size of x_j's class (the literal reading), i.e. it is the sum over the
other classes of the mean distance to that class. Distances are L2 with ``eps_sqrt`` inside
the square root (a finite gradient at zero distance); ``eps_den`` guards single-class
batches, which class-aware sampling avoids in the first place.
"""

from __future__ import annotations

import torch


def pairwise_l2(features: torch.Tensor, eps_sqrt: float = 1e-8) -> torch.Tensor:
    """Matrix of sqrt(||x_i - x_j||^2 + eps) for features (n, d); returns (n, n)."""
    diff = features[:, None, :] - features[None, :, :]
    return torch.sqrt((diff * diff).sum(dim=-1) + eps_sqrt)


def ec_stfl_loss(
    features: torch.Tensor,
    labels: torch.Tensor,
    eps_sqrt: float = 1e-8,
    eps_den: float = 1e-6,
) -> torch.Tensor:
    """EC-STFL of one batch (a scalar tensor, summed over the batch, not averaged).

    Args:
        features: (n, d) features at the layer the loss is attached to (fc7 for C3D).
        labels: (n,) integer class labels.

    Raises:
        ValueError: shapes do not match.
    """
    if features.dim() != 2 or labels.shape != features.shape[:1]:
        raise ValueError(
            f"ec_stfl_loss: features (n, d) and labels (n,) expected, got "
            f"{tuple(features.shape)} and {tuple(labels.shape)}"
        )
    dist = pairwise_l2(features, eps_sqrt)
    same = labels[:, None] == labels[None, :]
    sizes = same.sum(dim=1).to(features.dtype)  # |N(x_i)|, self included
    numerator = (dist * same).sum(dim=1) / sizes
    denominator = (dist * ~same / sizes[None, :]).sum(dim=1)
    return (numerator / (denominator + eps_den)).sum()
