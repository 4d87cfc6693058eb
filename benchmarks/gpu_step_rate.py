"""What limits a GPU's training speed: the trainer's step rate against a bare loop.

    python benchmarks/gpu_step_rate.py [--width 1.0] [--batch-sizes 64,128] [--samples 16384]

On random 48x48 grey faces (the fer2013 recipe's input), ``baseline_cnn`` trains one epoch
per measurement, bf16 autocast, SGD, channels_last, in three ways for each batch size:

- ``bare``: a hand-written loop over a batch tensor already on the GPU (no augmentation, no
  metrics): what the network and the optimiser alone cost per step;
- ``trainer``: the project trainer without augmentation;
- ``trainer_aug``: the project trainer with the fer2013 recipe's augmentation (mirror, 4-pixel
  shift, 10-degree rotation, 10 % zoom, random erasing), sliced and augmented on the GPU.

The trainer's figures include what its ``fit`` does besides training: copying the split to
the GPU once and scoring a 2-face validation split. Each measurement is the median of
``--repeats`` epochs after a discarded warm-up, all in one
process on an otherwise idle GPU; ratios are against ``bare`` at the same batch size. The
fer2013 GPU runs (``fer2013_gpu_long.md``) trained three processes on one GPU at once, so
their per-run images/s is a share of the card, not its speed.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.report import (  # noqa: E402
    RESULTS_DIR,
    git_commit,
    machine_facts,
    results_name,
    write_results,
)
from components.models import create_model  # noqa: E402
from components.training.config import TrainConfig  # noqa: E402
from components.training.data import SplitData  # noqa: E402
from components.training.trainer import Trainer, seed_everything  # noqa: E402

CLASSES = 7
WAYS = ("bare", "trainer", "trainer_aug")
RECIPE_AUG = {"mirror": True, "shift": 4, "rotate": 10.0, "scale": 0.1, "erase_p": 0.25}
NO_AUG = {"mirror": False, "shift": 0, "rotate": 0.0, "scale": 0.0, "erase_p": 0.0}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_epoch(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int,
               device: torch.device) -> None:
    """Shuffle, step, no metrics: the least a training epoch can cost on ``device``."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    order = torch.randperm(len(x), device=device)
    model.train()
    for start in range(0, len(x), batch):
        index = order[start : start + batch]
        with torch.autocast(device.type, dtype=torch.bfloat16):
            logits = model(x[index].contiguous(memory_format=torch.channels_last))
        loss = torch.nn.functional.cross_entropy(logits.float(), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def images_per_second(way: str, args: argparse.Namespace, batch: int, train: SplitData,
                      device: torch.device) -> float:
    seed_everything(0)
    model = create_model("baseline_cnn", CLASSES, 1, width=args.width)
    if way == "bare":
        model.to(device).to(memory_format=torch.channels_last)
        x = train.batch(slice(None)).to(device)
        y = train.labels().to(device)
        sync(device)
        start = time.perf_counter()
        bare_epoch(model, x, y, batch, device)
        sync(device)
        return len(train) / (time.perf_counter() - start)
    cfg = TrainConfig(epochs=1, batch_size=batch, optimizer="sgd", lr=0.01, schedule="none",
                      patience=0, precision="bf16", device=device.type, progress=False,
                      track=False, **(RECIPE_AUG if way == "trainer_aug" else NO_AUG))
    tiny = SplitData.from_arrays(train.rows(slice(0, 2)), train.y[:2], name="tiny")
    start = time.perf_counter()
    Trainer(model, cfg).fit(train, tiny)  # ends with a read of the epoch's sums: synced
    return len(train) / (time.perf_counter() - start)


def recorded_command(args: list[str]) -> str:
    """The command without ``--out-dir``: where the files went (a GPU machine's output
    folder) is no part of what was measured, and would name that machine's folders."""
    kept, skip = [], False
    for arg in args:
        if skip or arg.startswith("--out-dir="):
            skip = False
            continue
        if arg == "--out-dir":
            skip = True
            continue
        kept.append(arg)
    return shlex.join(["python", "benchmarks/gpu_step_rate.py", *kept])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch-sizes", default="64,128")
    parser.add_argument("--samples", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--name", default="gpu_step_rate", type=results_name)
    parser.add_argument("--commit", default=None,
                        help="the commit of the tree being run, where the machine's git "
                             "metadata is not the tree's (a GPU machine's copy of the working "
                             "tree can carry an older .git): recorded as the commit, with "
                             "what git read there beside it")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    batches = [int(b) for b in args.batch_sizes.split(",") if b]
    command = recorded_command(sys.argv[1:] if argv is None else argv)
    rng = np.random.default_rng(0)
    train = SplitData.from_arrays(rng.random((args.samples, 1, 48, 48), dtype=np.float32),
                                  rng.integers(0, CLASSES, args.samples), name="random48")
    speeds: dict[str, dict[str, list[float]]] = {}
    for batch in batches:
        runs = speeds[str(batch)] = {way: [] for way in WAYS}
        for way in WAYS:  # warm-up: kernel selection for this batch's shapes
            images_per_second(way, args, batch, train, device)
        for _ in range(args.repeats):
            for way in WAYS:
                runs[way].append(images_per_second(way, args, batch, train, device))
        print(f"batch {batch}: " + ", ".join(
            f"{w} {statistics.median(v):,.0f} images/s" for w, v in runs.items()), flush=True)
    medians = {b: {w: statistics.median(v) for w, v in r.items()} for b, r in speeds.items()}
    machine = machine_facts()
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    read_here = git_commit(REPO_ROOT)
    payload = {"command": command, "commit": args.commit or read_here,
               "commit_as_read_there": read_here if args.commit else None, "machine": machine,
               "gpu": gpu, "torch": torch.__version__,
               "settings": {k: v for k, v in vars(args).items() if k != "out_dir"},
               "images_per_second": speeds, "median": medians}
    lines = [
        "# What limits a GPU's training speed: the trainer's step rate against a bare loop", "",
        f"- command: `{command}`", f"- commit: `{payload['commit']}`",
        f"- machine: {gpu}; {machine['cpu']}, {machine['cpu_count']} cores; torch "
        f"{torch.__version__}; one process, nothing else on the GPU",
        f"- `baseline_cnn` width {args.width}, 48x48 grey, bf16 autocast, SGD, "
        f"{args.samples} random faces an epoch, median of {args.repeats} epochs after a "
        "warm-up", "",
        "| batch | way | images/s | steps/s | against bare |", "|---|---|---|---|---|",
    ]
    for batch, row in medians.items():
        for way in WAYS:
            lines.append(f"| {batch} | {way} | {row[way]:,.0f} | {row[way] / int(batch):,.1f} "
                         f"| {row[way] / row['bare']:.2f}x |")
    lines += ["", "Ratios are against the bare loop measured in the same run."]
    for path in write_results(args.name, payload, "\n".join(lines) + "\n", args.out_dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
