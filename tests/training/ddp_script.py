"""Entry script for the 2-process DDP test (run under torch.distributed.run).

    python -m torch.distributed.run --nproc_per_node=2 --master_port=<port> \
        tests/training/ddp_script.py <task_dir> <out_dir>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from components.training.distributed import init_distributed, shutdown
from components.training.run import ModelSpec, train_torch
from components.training.trainer import seed_everything
from tests.training.helpers import TinyCNN, quick_config


def main(task_dir: Path, out_dir: Path) -> None:
    """Train the tiny CNN on ``task_dir``; rank 0 writes ``out_dir``."""
    ctx = init_distributed()
    seed_everything(0)  # identical initial weights on every rank (DDP also broadcasts)
    spec = ModelSpec("tiny", 4, 3, ("color",), task_dir.name,
                     ["anger", "happiness", "neutral", "surprise"])
    metrics = train_torch(TinyCNN(4, 3), spec, quick_config(epochs=4), task_dir, out_dir,
                          ctx=ctx)
    (out_dir.parent / f"rank{ctx.rank}.json").write_text(json.dumps(metrics))
    shutdown(ctx)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
