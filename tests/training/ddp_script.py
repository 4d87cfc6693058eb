"""Entry script for the 2-process DDP tests (run under torch.distributed.run).

    python -m torch.distributed.run --nproc_per_node=2 --master_port=<port> \
        tests/training/ddp_script.py <task_dir> <out_dir> [full|one_step|budget]

``full`` trains the tiny CNN for 4 epochs (rank 0 writes the run folder); ``one_step``
takes exactly one optimiser step on one global batch and writes the weights, to compare with
one process stepping on the same batch; ``budget`` trains to a time budget and every rank
writes the epoch counts it planned and ran (all ranks must agree, or DDP would hang).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from components.models import ModelSpec, TorchClassifier
from components.training.data import SplitData, load_split
from components.training.distributed import DistContext, init_distributed, shutdown
from components.training.run import train_run
from components.training.trainer import Trainer, seed_everything
from tests.training.helpers import TinyCNN, quick_config

GLOBAL_BATCH = 16


def one_step_config():
    """Plain SGD without momentum, augmentation, dropout or schedule: one step is a pure
    function of the weights and the global batch's mean gradient."""
    return quick_config(epochs=1, batch_size=GLOBAL_BATCH, optimizer="sgd", momentum=0.0,
                        lr=0.5, weight_decay=0.0, schedule="none", mirror=False)


def one_step(task_dir: Path, ctx: DistContext | None = None) -> dict[str, torch.Tensor]:
    """Weights after one optimiser step on the first ``GLOBAL_BATCH`` training samples."""
    seed_everything(0)
    model = TinyCNN(4, 3)
    model.drop.p = 0.0
    train = load_split(task_dir, "train", ("color",))
    rows = slice(0, GLOBAL_BATCH)
    batch = SplitData.from_arrays(train.rows(rows), train.y[rows], name="one batch")
    Trainer(model, one_step_config(), ctx=ctx or DistContext()).fit(batch, batch)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def main(task_dir: Path, out_dir: Path, mode: str = "full") -> None:
    """Train on ``task_dir`` in ``mode``; rank 0 writes ``out_dir``."""
    ctx = init_distributed()
    if mode == "one_step":
        weights = one_step(task_dir, ctx)
        if ctx.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            torch.save(weights, out_dir / "one_step.pt")
        shutdown(ctx)
        return
    seed_everything(0)  # identical initial weights on every rank (DDP also broadcasts)
    if mode == "budget":
        train, val = (load_split(task_dir, s, ("color",)) for s in ("train", "val"))
        cfg = quick_config(epochs=1000, budget_minutes=0.1, schedule="onecycle")
        result = Trainer(TinyCNN(4, 3), cfg, ctx=ctx).fit(train, val)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"budget{ctx.rank}.json").write_text(json.dumps({
            "probe": result.plan.epochs, "planned": result.epochs_planned,
            "run": result.epochs_run}))
        shutdown(ctx)
        return
    spec = ModelSpec("tiny", 4, 3, ("color",), task_dir.name,
                     ["anger", "happiness", "neutral", "surprise"])
    metrics = train_run(TorchClassifier(TinyCNN(4, 3)), spec, quick_config(epochs=4), task_dir,
                        out_dir, ctx=ctx)
    (out_dir.parent / f"rank{ctx.rank}.json").write_text(json.dumps(metrics))
    shutdown(ctx)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), *(sys.argv[3:4]))
