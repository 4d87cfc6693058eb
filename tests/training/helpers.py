"""Tiny models and settings for fast trainer tests (real torch, no mocks)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from components.training.config import TrainConfig
from components.training.data import SplitData, load_split
from components.training.trainer import Trainer, seed_everything
from tests.synthetic_task import make_synthetic_task

# The synthetic task's expressions, in the order its labels index them.
SYNTHETIC_CLASSES = ["anger", "happiness", "neutral", "surprise"]


class TinyCNN(nn.Module):
    """conv -> ReLU -> global pool -> dropout -> linear: learns the synthetic bands quickly."""

    def __init__(self, num_classes: int, in_channels: int, width: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d((4, 1))  # keeps the vertical band position
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(width * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(torch.flatten(self.pool(torch.relu(self.conv(x))), 1)))


class TinyClipNet(nn.Module):
    """Clip model with the EC-STFL interface: ``forward(x, return_features)``."""

    def __init__(self, num_classes: int, in_channels: int, width: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d((4, 1))
        self.fc7 = nn.Linear(width * 4, 16)
        self.fc8 = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        n, t = x.shape[:2]
        h = torch.relu(self.conv(x.flatten(0, 1)))
        h = self.pool(h).flatten(1).view(n, t, -1).mean(1)
        feats = torch.relu(self.fc7(h))
        logits = self.fc8(feats)
        return (logits, feats) if return_features else logits


def quick_config(**changes) -> TrainConfig:
    """Settings sized for 64-sample synthetic splits, quiet."""
    base = dict(epochs=4, batch_size=16, lr=0.03, optimizer="adam", schedule="cosine",
                patience=0, progress=False, seed=0)
    base.update(changes)
    return TrainConfig(**base)


def synthetic_color_splits(root: Path) -> tuple[SplitData, SplitData]:
    """Train and val splits of the synthetic 16 px task's colour images, written under
    ``root``: small enough that a trainer test fits a few epochs in seconds."""
    make_synthetic_task(root, "rgbd", size=16)
    return (load_split(root / "image", "train", ("color",)),
            load_split(root / "image", "val", ("color",)))


def seeded_tiny_cnn() -> TinyCNN:
    """A :class:`TinyCNN` for the synthetic task, with the same initial weights each call."""
    seed_everything(0)
    return TinyCNN(len(SYNTHETIC_CLASSES), 3)


def tiny_trainer(cfg: TrainConfig, **kwargs) -> Trainer:
    """A trainer of a fresh :func:`seeded_tiny_cnn` on the synthetic task's classes."""
    return Trainer(seeded_tiny_cnn(), cfg, SYNTHETIC_CLASSES, **kwargs)
