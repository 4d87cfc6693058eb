"""Multi-process (DistributedDataParallel) plumbing for the trainer, CPU/gloo first.

Launched with ``torchrun --nproc_per_node=N`` (or ``python -m torch.distributed.run``), each
process reads RANK/WORLD_SIZE from the environment; :func:`init_distributed` joins the group.
Started plainly, everything here degrades to a one-process no-op, so the trainer has a single
code path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from components.errors import ConfigError

TIMEOUT_ENV = "FEROPS_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 600


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the group."""

    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes files and shows progress."""
        return self.rank == 0


def backend_for(device: str) -> str:
    """The process-group backend for ranks that train on ``device`` (``train.device``).

    NCCL only where the ranks train on CUDA: a CPU run on a machine that also has a GPU
    must not join an NCCL group, which cannot reduce CPU tensors.
    """
    on_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    return "nccl" if on_cuda else "gloo"


def init_distributed(device: str = "cpu", backend: str | None = None) -> DistContext:
    """Join the process group described by torchrun's environment, if any.

    The backend follows the device the ranks train on (:func:`backend_for`) unless
    ``backend`` says otherwise. Returns the one-process context when WORLD_SIZE is unset or 1.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    if not dist.is_initialized():
        dist.init_process_group(backend=backend or backend_for(device),
                                timeout=collective_timeout())
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size())


def collective_timeout() -> timedelta:
    """How long a rank waits on its peers (``FEROPS_DIST_TIMEOUT_S``, default 600 s).

    When a node dies, the survivors block in their next collective; this bounds how long
    before they fail (and torchrun exits non-zero) so the job can be restarted with
    ``--resume``. PyTorch's own default is 30 minutes.
    """
    raw = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_S))
    try:
        seconds = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{TIMEOUT_ENV}={raw!r}: expected seconds") from exc
    if seconds <= 0:
        raise ConfigError(f"{TIMEOUT_ENV}={raw!r}: must be > 0")
    return timedelta(seconds=seconds)


def current_context() -> DistContext:
    """The context of an already initialised group (one process when none)."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size())
    return DistContext()


def all_gather_objects(ctx: DistContext, obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (just ``[obj]`` in one process)."""
    if not ctx.enabled:
        return [obj]
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def all_reduce_sum(ctx: DistContext, values: list[float]) -> list[float]:
    """Element-wise sum of ``values`` over all ranks."""
    if not ctx.enabled:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (e.g. until rank 0 has written a checkpoint)."""
    if ctx.enabled:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    """Leave the process group (call once at the end of a torchrun script)."""
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
