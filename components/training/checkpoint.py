"""Crash-safe checkpoints: the whole training state, written atomically every epoch.

A checkpoint is written to a temporary file in the same folder and moved over the old one
with ``os.replace``, which is atomic on POSIX and Windows: a run killed mid-write leaves the
previous checkpoint intact rather than a truncated file that would break ``--resume``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.atomic import atomic_write
from components.errors import DataError

CHECKPOINT_NAME = "checkpoint.pt"


def rng_state() -> dict[str, Any]:
    """The RNG states of Python, numpy and torch (CPU) for a checkpoint."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore states captured by :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def atomic_torch_save(obj: Any, path: Path) -> Path:
    """``torch.save`` to ``path`` atomically (never a partial file)."""
    return atomic_write(path, lambda handle: torch.save(obj, handle))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by the trainer.

    Raises:
        DataError: the file is missing or not a readable checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: checkpoint not found")
    try:
        # weights_only=False: the checkpoint holds RNG tuples and history dicts we wrote.
        return torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as exc:
        raise DataError(f"{path}: cannot read checkpoint ({exc})") from exc
