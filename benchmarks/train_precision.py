"""Training throughput of the project trainer in float32 against bfloat16 autocast.

    python benchmarks/train_precision.py [--arch baseline_cnn] [--width 0.5] \
        [--samples 2048] [--batch-size 64] [--repeats 3] [--pipeline-isa] [--name NAME]

Both settings train the same model (same initial weights) through
:class:`components.training.trainer.Trainer` on the same random 48x48 grey faces for one
epoch (SGD, no schedule, mirroring on), ``channels_last`` on; only ``train.precision``
differs. Runs alternate (fp32, bf16, fp32, ...) and the medians of images per second are
compared, so drift in machine load hits both sides alike. The float32 run is the baseline;
the ratio printed is bf16 speed over fp32 speed. bf16 pays off on CPUs with AMX; with
AVX512-BF16 alone it is native but slower than float32, and emulated (far slower) elsewhere;
the CPU's bf16 flags are printed and recorded. ``--name`` keeps one results file per kind of
CPU.

``--pipeline-isa`` runs both under the instruction-set caps every pipeline stage runs with
(:mod:`components.isa`, set before torch loads) and writes ``train_precision_pipeline_isa``:
what ``precision: bf16`` costs inside ``dvc repro`` on a CPU with native bf16.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from components.isa import pin_instruction_set  # noqa: E402  (loads no numeric library)

PIPELINE_ISA = "--pipeline-isa"
if PIPELINE_ISA in sys.argv:  # the caps must be in the environment before torch loads
    pin_instruction_set()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.report import (  # noqa: E402
    git_commit,
    machine_facts,
    results_name,
    write_results,
)
from components.models import create_model  # noqa: E402
from components.training.config import TrainConfig  # noqa: E402
from components.training.data import SplitData  # noqa: E402
from components.training.trainer import (  # noqa: E402
    Trainer,
    cpu_bf16_flags,
    seed_everything,
)

PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
CLASSES = 7


def one_epoch(args: argparse.Namespace, precision: str, train: SplitData) -> float:
    """Images per second of one trainer epoch (validation on 2 samples, no checkpoint)."""
    seed_everything(0)
    model = create_model(args.arch, CLASSES, 1, width=args.width)
    cfg = TrainConfig(epochs=1, batch_size=args.batch_size, optimizer="sgd", lr=0.01,
                      schedule="none", patience=0, mirror=True, precision=precision,
                      progress=False, track=False)
    tiny = SplitData.from_arrays(train.rows(slice(0, 2)), train.y[:2], name="tiny")
    start = time.perf_counter()
    Trainer(model, cfg).fit(train, tiny)
    return len(train) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="baseline_cnn")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(PIPELINE_ISA, action="store_true",
                        help="run under the pipeline stages' instruction-set caps")
    parser.add_argument("--name", default=None, type=results_name,
                        help="results file name (default train_precision, or "
                             "train_precision_pipeline_isa with --pipeline-isa): one per kind "
                             "of CPU, so a second machine does not overwrite the first's")
    args = parser.parse_args(argv)
    if args.pipeline_isa and PIPELINE_ISA not in sys.argv:
        parser.error(f"{PIPELINE_ISA} must be on the command line (the caps are set at import)")
    torch.set_num_threads(os.cpu_count() or 1)
    command = shlex.join(["python", "benchmarks/train_precision.py",
                          *(sys.argv[1:] if argv is None else argv)])
    print("command: " + command)
    flags = sorted(cpu_bf16_flags()) or "none of amx_bf16/avx512_bf16"
    print(f"machine: {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}, CPU flags {flags}")
    rng = np.random.default_rng(0)
    x = rng.random((args.samples, 1, 48, 48), dtype=np.float32)
    y = rng.integers(0, CLASSES, args.samples)
    train = SplitData.from_arrays(x, y, name="random48")
    one_epoch(args, "bf16", train)  # warm-up: kernel selection for both paths' shapes
    one_epoch(args, "fp32", train)
    speeds: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for _ in range(args.repeats):
        for precision in PRECISIONS:
            speeds[precision].append(one_epoch(args, precision, train))
    medians = {p: statistics.median(v) for p, v in speeds.items()}
    print(f"{args.arch} width {args.width}, batch {args.batch_size}, {args.samples} samples, "
          f"median of {args.repeats}:")
    for precision in PRECISIONS:
        print(f"  {precision}: {medians[precision]:.0f} images/s")
    ratio = medians["bf16"] / medians["fp32"]
    print(f"bf16 / fp32 speed: {ratio:.2f}x")
    payload = {"command": command, "commit": git_commit(REPO_ROOT), "machine": machine_facts(),
               "settings": vars(args), "images_per_second": speeds, "median": medians,
               "bf16_over_fp32": ratio}
    lines = [
        "# Trainer throughput: bf16 autocast vs float32", "",
        f"- command: `{command}`", f"- commit: `{payload['commit']}`",
        f"- machine: {payload['machine']['cpu']}, {payload['machine']['cpu_count']} cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), native bf16: "
        f"{payload['machine']['native_bf16']} (flags: "
        f"{', '.join(payload['machine']['cpu_bf16_flags']) or 'none'}); instruction sets: "
        f"{'the pipeline caps (components/isa.py)' if args.pipeline_isa else 'uncapped'}",
        f"- {args.arch} width {args.width}, batch {args.batch_size}, {args.samples} samples, "
        f"median of {args.repeats}", "",
        "| precision | images/s |", "|---|---|",
        *[f"| {p} | {medians[p]:.0f} |" for p in PRECISIONS], "",
        f"bf16 / fp32: **{ratio:.2f}x** (measured in the same run)",
    ]
    name = args.name or ("train_precision_pipeline_isa" if args.pipeline_isa
                         else "train_precision")
    for path in write_results(name, payload, "\n".join(lines)):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
