"""Seed 004 backbone: a C3D-style 3-D CNN sized for CPU training.

It keeps the C3D layout (Tran et al. 2015: 3x3x3 kernels, conv1a / conv2a / conv3a-b /
conv4a-b / conv5a-b, pool1 1x2x2 then 2x2x2 pools, fc6 -> fc7 -> fc8 with dropout) with
widths scaled down by ``width`` and an adaptive pool before fc6 so short clips (T >= 2) and
small faces (>= 32 px) work. EC-STFL attaches to the post-ReLU fc7 features (or fc6 with
``feature_layer="fc6"``, claim 19), which ``forward(x, return_features=True)`` returns
alongside the logits.
"""

from __future__ import annotations

import torch
from torch import nn

from components.models.baseline import scaled

C3D_WIDTHS: tuple[int, ...] = (64, 128, 256, 512, 512)
CONVS_PER_STAGE: tuple[int, ...] = (1, 1, 2, 2, 2)
FEATURE_LAYERS: tuple[str, ...] = ("fc7", "fc6")


class C3D(nn.Module):
    """C3D for clips shaped (N, T, C, H, W), as the preprocess stage writes them.

    Args:
        num_classes: logits of fc8.
        in_channels: C of the clip frames (3 for RGB, 1 for grey).
        width: multiplier on the 64-128-256-512-512 C3D widths (0.25 suits CPU).
        fc_width: width of fc6 and fc7 (the EC-STFL feature size N_F).
        dropout: dropout after fc6 and after fc7.
        batch_norm: BN after every conv (not in the original C3D; helps from scratch).
        feature_layer: ``fc7`` (the patent's second-to-last FC) or ``fc6``: whose post-ReLU
            activations ``forward(..., return_features=True)`` returns (where EC-STFL acts).

    Raises:
        ValueError: an unknown ``feature_layer``.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        width: float = 0.25,
        fc_width: int = 512,
        dropout: float = 0.5,
        batch_norm: bool = True,
        feature_layer: str = "fc7",
    ) -> None:
        super().__init__()
        if feature_layer not in FEATURE_LAYERS:
            raise ValueError(f"c3d: feature_layer must be one of {FEATURE_LAYERS}, "
                             f"got {feature_layer!r}")
        self.feature_layer = feature_layer
        layers: list[nn.Module] = []
        prev = in_channels
        for stage, (base, n_conv) in enumerate(zip(C3D_WIDTHS, CONVS_PER_STAGE, strict=True)):
            out = scaled(base, width)
            for _ in range(n_conv):
                layers.append(nn.Conv3d(prev, out, 3, padding=1, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm3d(out))
                layers.append(nn.ReLU(inplace=True))
                prev = out
            if stage < len(C3D_WIDTHS) - 1:
                kernel = (1, 2, 2) if stage == 0 else (2, 2, 2)
                layers.append(nn.MaxPool3d(kernel, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        # pool5 is adaptive: any clip length and face size reaches fc6 as 1 x 2 x 2 cells.
        self.pool5 = nn.AdaptiveMaxPool3d((1, 2, 2))
        self.fc6 = nn.Linear(prev * 4, fc_width)
        self.fc7 = nn.Linear(fc_width, fc_width)
        self.fc8 = nn.Linear(fc_width, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Return fc8 logits, or (logits, post-ReLU features of ``feature_layer``) when
        ``return_features``.

        Raises:
            ValueError: ``x`` is not 5-D (N, T, C, H, W).
        """
        if x.dim() != 5:
            raise ValueError(f"C3D expects clips (N, T, C, H, W), got shape {tuple(x.shape)}")
        h = self.pool5(self.features(x.permute(0, 2, 1, 3, 4)))
        fc6 = torch.relu(self.fc6(torch.flatten(h, 1)))
        fc7 = torch.relu(self.fc7(self.dropout(fc6)))
        logits = self.fc8(self.dropout(fc7))
        if not return_features:
            return logits
        return logits, (fc7 if self.feature_layer == "fc7" else fc6)
