"""An exponential moving average of a network's weights, kept beside the trained ones.

A short schedule ends while the weights still jitter from batch to batch; their running
average (Polyak averaging, as ``ModelEmaV2`` in timm) is smoother and usually scores a little
higher than the last step's weights. The trainer validates, keeps and saves the average when
``train.ema_decay`` is set. The average covers every floating-point entry of the state dict:
parameters and BatchNorm's running statistics together, so the two stay consistent;
integer buffers (BatchNorm's batch counter) are copied. ``torch.optim.swa_utils.AveragedModel``
keeps a second module and has no warm-up; a plain state dict swaps into the trained network
for validation and goes into the checkpoint as it is.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# The first updates use a smaller decay, (1 + n) / (10 + n) after n updates (timm's
# warm-up): the average then follows the early, fast-moving weights instead of being held
# at the random initialisation for thousands of steps.
WARMUP_OFFSET = 10.0


class WeightAverage:
    """An exponential moving average of ``model``'s state dict.

    Args:
        model: the network being trained; the average starts as a copy of its weights.
        decay: the weight the average keeps per update once warmed up, in (0, 1): 0.999 at
            about 900 steps an epoch averages over roughly the last epoch.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.shadow = {key: value.detach().clone() for key, value in model.state_dict().items()}

    def current_decay(self) -> float:
        """The decay the next update applies (warm-up first, then ``decay``)."""
        return min(self.decay, (1.0 + self.updates) / (WARMUP_OFFSET + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights (call after each step)."""
        keep = self.current_decay()
        averaged, live = [], []
        for key, value in model.state_dict().items():
            target = self.shadow[key]
            if target.is_floating_point():
                averaged.append(target)
                live.append(value.detach())
            else:
                target.copy_(value)
        if averaged:
            torch._foreach_lerp_(averaged, live, 1.0 - keep)
        self.updates += 1

    def weights(self) -> dict[str, torch.Tensor]:
        """The averaged state dict (the tensors themselves: load, do not modify)."""
        return self.shadow

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint needs to continue the average exactly."""
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (a resumed run)."""
        self.decay = float(state["decay"])
        self.updates = int(state["updates"])
        for key, value in state["shadow"].items():
            self.shadow[key].copy_(value)
