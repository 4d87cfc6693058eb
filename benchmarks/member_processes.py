"""What training a seed ensemble's members at once buys over training them in turn.

    python benchmarks/member_processes.py [--arch baseline_cnn] [--width 0.5] \
        [--members 2] [--samples 4096] [--epochs 1] [--batch-size 64] \
        [--precision fp32|bf16|auto] [--repeats 3] [--name member_processes] [--out-dir D]

The same ensemble (``--members`` networks of ``--arch`` at ``--width``, the model option
``members``) is trained on the same random 48x48 grey faces by the platform's own loop
(:meth:`components.training.loop.TrainerLoop.fit_members`) twice per repeat, alternating:
members in turn (``train.member_processes: 1``, each with all of this process's threads) and
members at once (``member_processes`` = ``--members``, a spawned process each with an equal
share of the threads). The wall seconds of each whole fit (process start-up included) and
the training images/s the loop reports are compared as medians, in the same run, so drift in
the machine's speed hits both alike. Run outside the pipeline, nothing caps the CPU's
kernels (``--precision auto``: bf16 where the trainer measured it pays off). Writes
``benchmarks/results/<name>.{json,md}`` with the commit and machine.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import (  # noqa: E402
    RESULTS_DIR,
    git_commit,
    machine_facts,
    results_name,
    write_results,
)
from components.models.registry import create_members  # noqa: E402
from components.training.config import TrainConfig  # noqa: E402
from components.training.data import SplitData  # noqa: E402
from components.training.loop import TrainerLoop  # noqa: E402
from components.training.trainer import resolve_precision, seed_everything  # noqa: E402

CLASSES = 7
FACE_PX = 48
LAYOUTS = ("in turn", "at once")


def fit_once(args: argparse.Namespace, processes: int, train: SplitData,
             val: SplitData) -> dict[str, float]:
    """Wall seconds of one ensemble fit and the training images/s its loop reports."""
    seed_everything(0)
    net = create_members(args.arch, CLASSES, 1, {"width": args.width, "members": args.members})
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer="sgd",
                      lr=0.01, schedule="none", patience=0, mirror=True,
                      precision=args.precision, progress=False, track=False,
                      member_processes=processes)
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        _, outcome = TrainerLoop(cfg, out_dir=Path(scratch)).fit_members(net, train, val,
                                                                         ecstfl=False)
        wall = time.perf_counter() - start
    return {"wall_seconds": wall,
            "train_images_per_second": outcome.timings["train_images_per_second"]}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="baseline_cnn")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--precision", choices=["fp32", "bf16", "auto"], default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--name", default="member_processes", type=results_name)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR,
                        help="where the results files go (default benchmarks/results)")
    args = parser.parse_args(argv)
    if args.members < 2:
        parser.error(f"--members {args.members}: an ensemble has at least 2")
    return args


def markdown(payload: dict) -> str:
    """The comparison for people."""
    machine, args, median = payload["machine"], payload["settings"], payload["median"]
    rows = [f"| {layout} | {processes} | {threads} | {median[layout]['wall_seconds']:.1f} | "
            f"{median[layout]['train_images_per_second']:.0f} |"
            for layout, processes, threads in payload["layouts"]]
    return "\n".join([
        "# Seed ensemble members at once against in turn", "",
        f"- command: `{payload['command']}`", f"- commit: `{payload['commit']}`",
        f"- machine: {machine['cpu']}, {machine['cpu_count']} cores, torch {machine['torch']} "
        f"({machine['torch_threads']} threads), native bf16: {machine['native_bf16']}",
        f"- {args['members']} members of {args['arch']} width {args['width']}, "
        f"{payload['precision_used']}, batch {args['batch_size']}, {args['epochs']} epoch(s) "
        f"each of {args['samples']} random {FACE_PX}x{FACE_PX} grey faces, through "
        "`TrainerLoop.fit_members`; medians of "
        f"{args['repeats']} alternating repeats (each after a warm-up of both)", "",
        "| members | processes | threads each | wall s (whole fit) | training images/s |",
        "|---|---|---|---|---|", *rows, "",
        f"At once against in turn, same run: **{payload['speedup_wall']:.2f}x** by wall time "
        f"(process start-up included), {payload['speedup_images_per_second']:.2f}x by the "
        "training images/s the loop reports.",
    ]) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    threads = torch.get_num_threads()
    command = shlex.join(["python", "benchmarks/member_processes.py",
                          *(sys.argv[1:] if argv is None else argv)])
    print("command: " + command, flush=True)
    rng = np.random.default_rng(0)
    x = rng.random((args.samples, 1, FACE_PX, FACE_PX), dtype=np.float32)
    train = SplitData.from_arrays(x, rng.integers(0, CLASSES, args.samples), name="random48")
    val = SplitData.from_arrays(x[:2], train.y[:2], name="tiny")
    processes = {"in turn": 1, "at once": args.members}
    for layout in LAYOUTS:  # warm-up: kernel selection, the spawn path's first imports
        fit_once(args, processes[layout], train, val)
    runs: dict[str, list[dict[str, float]]] = {layout: [] for layout in LAYOUTS}
    for repeat in range(args.repeats):
        for layout in LAYOUTS:
            runs[layout].append(fit_once(args, processes[layout], train, val))
            print(f"repeat {repeat + 1} {layout}: {runs[layout][-1]}", flush=True)
    median = {layout: {key: statistics.median(r[key] for r in rows) for key in rows[0]}
              for layout, rows in runs.items()}
    payload = {
        "command": command, "commit": git_commit(REPO_ROOT), "machine": machine_facts(),
        "settings": {k: v for k, v in vars(args).items() if k != "out_dir"},
        "precision_used": resolve_precision(args.precision),
        "layouts": [("in turn", 1, threads),
                    ("at once", args.members, max(1, threads // args.members))],
        "runs": runs, "median": median,
        "speedup_wall": median["in turn"]["wall_seconds"] / median["at once"]["wall_seconds"],
        "speedup_images_per_second": (median["at once"]["train_images_per_second"]
                                      / median["in turn"]["train_images_per_second"]),
    }
    text = markdown(payload)
    print(text)
    for path in write_results(args.name, payload, text, args.out_dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
