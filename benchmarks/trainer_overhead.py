"""How much the project trainer costs over a bare PyTorch loop (target: <= 5 %).

    python benchmarks/trainer_overhead.py [--arch baseline_cnn] [--epochs 3] [--repeats 3]

Both loops train the same model (same initial weights) on the same synthetic preprocessed
arrays with the same batch size, epochs and optimiser (Adam, no schedule, no augmentation),
and both score the validation split after every epoch. The trainer additionally computes its
metrics, writes an atomic checkpoint each epoch and drives a progress bar: that is the
overhead measured. Runs alternate (bare, trainer, bare, ...) and medians are compared, so
drift in machine load hits both sides alike.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import git_commit, machine_facts, write_results  # noqa: E402
from components.models import create_model  # noqa: E402
from components.training.config import TrainConfig  # noqa: E402
from components.training.data import SplitData, load_split  # noqa: E402
from components.training.trainer import Trainer, seed_everything  # noqa: E402
from tests.synthetic_task import make_synthetic_task  # noqa: E402


def bare_loop(model: torch.nn.Module, train: SplitData, val: SplitData, cfg: TrainConfig) -> None:
    """The loop a person would write by hand: shuffle, step, evaluate on val each epoch."""
    x, y = train.batch(slice(None)), train.labels()
    xv = val.batch(slice(None))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        for start in range(0, len(x), cfg.batch_size):
            index = order[start : start + cfg.batch_size]
            xb = x[index]
            if cfg.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(model(xb), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for start in range(0, len(xv), 2 * cfg.batch_size):
                xb = xv[start : start + 2 * cfg.batch_size]
                if cfg.channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                model(xb)


def main(argv: list[str] | None = None) -> int:
    """Time both loops and print a table with the overhead ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="baseline_cnn")
    parser.add_argument("--width", type=float, default=0.25, help="model width multiplier")
    parser.add_argument("--size", type=int, default=48, help="image side in pixels")
    parser.add_argument("--train", type=int, default=512, help="training samples")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--progress", action="store_true", help="show the trainer's bar")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        sizes = {"train": args.train, "val": args.train // 4, "test": 8}
        task = make_synthetic_task(tmp_path, "rgbd", size=args.size, sizes=sizes, occlusion=())
        train = load_split(task, "train", ("color",))
        val = load_split(task, "val", ("color",))
        train.preload()
        val.preload()
        cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer="adam",
                          schedule="none", mirror=False, patience=0, progress=args.progress)

        def fresh() -> torch.nn.Module:
            seed_everything(0)
            return create_model(args.arch, 4, train.in_channels, width=args.width)

        times: dict[str, list[float]] = {"bare": [], "trainer": []}
        for repeat in range(args.repeats + 1):  # the first round warms up and is dropped
            for name in ("bare", "trainer"):
                model = fresh()
                start = time.perf_counter()
                if name == "bare":
                    bare_loop(model, train, val, cfg)
                else:
                    Trainer(model, cfg, out_dir=tmp_path / f"run{repeat}").fit(train, val)
                if repeat:
                    times[name].append(time.perf_counter() - start)

    bare, ours = statistics.median(times["bare"]), statistics.median(times["trainer"])
    ratio = ours / bare
    print(f"command: python {shlex.join(['benchmarks/trainer_overhead.py', *sys.argv[1:]])}")
    print(f"model {args.arch} (width {args.width}), {args.train} x {args.size}px, "
          f"batch {args.batch_size}, {args.epochs} epochs, {torch.get_num_threads()} threads")
    print("| loop | median s | runs |")
    print("|---|---|---|")
    print(f"| bare PyTorch | {bare:.2f} | {', '.join(f'{t:.2f}' for t in times['bare'])} |")
    print(f"| ferops Trainer | {ours:.2f} | {', '.join(f'{t:.2f}' for t in times['trainer'])} |")
    verdict = "OK" if ratio <= 1.05 else "ABOVE TARGET"
    print(f"overhead ratio trainer/bare = {ratio:.3f} ({(ratio - 1) * 100:+.1f} %; "
          f"target <= +5 %: {verdict})")
    command = f"python {shlex.join(['benchmarks/trainer_overhead.py', *sys.argv[1:]])}"
    facts = machine_facts()
    payload = {"command": command, "commit": git_commit(REPO_ROOT), "machine": facts,
               "settings": vars(args), "seconds": times, "median_bare": bare,
               "median_trainer": ours, "ratio": ratio}
    lines = [
        "# Trainer overhead against a bare PyTorch loop", "",
        f"- command: `{command}`", f"- commit: `{payload['commit']}`",
        f"- machine: {facts['cpu']}, {facts['cpu_count']} cores, torch {facts['torch']} "
        f"({facts['torch_threads']} threads)",
        f"- model {args.arch} (width {args.width}), {args.train} x {args.size}px, batch "
        f"{args.batch_size}, {args.epochs} epochs, median of {args.repeats}", "",
        "| loop | median s |", "|---|---|",
        f"| bare PyTorch | {bare:.2f} |", f"| ferops Trainer | {ours:.2f} |", "",
        f"trainer / bare: **{ratio:.3f}** ({(ratio - 1) * 100:+.1f} %; target <= +5 %: "
        f"{verdict})",
    ]
    for path in write_results("trainer_overhead", payload, "\n".join(lines)):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
