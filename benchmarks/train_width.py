"""Training throughput of one architecture at several widths, crop sizes and batch sizes.

    python benchmarks/train_width.py [--arch baseline_cnn] [--widths 0.25 0.375 0.5] \
        [--baseline 0.5] [--crops 0 40] [--samples 2048] [--batch-size 64 128] [--repeats 3] \
        [--rows 57418] [--precision fp32|bf16] [--name NAME] [--profile] [--out-dir D] \
        [--shapes 'NAME={"width": 1.0, "channels": [32, 64, 160, 320]}' ...]

A recipe with a minutes budget trades capacity for epochs: this measures the trade on the
machine at hand. Every width trains the same random 48x48 grey faces for one epoch through
:class:`components.training.trainer.Trainer` (SGD, no schedule, mirroring on, float32 or
``--precision bf16``, the trainer's autocast, on the CPU's own kernels: run outside the
pipeline, nothing caps them);
runs alternate between widths and the medians of images per second are compared, so drift
in machine load hits every width alike. ``--crops`` also trains each width on random crops
of that size (``train.crop``; 0 = whole faces, the default), the other way to buy epochs.
Several ``--batch-size`` values train each of those at every batch size too: a CPU's kernels
may run larger batches faster per image, which a recipe's batch size could take (the
learning rate would have to follow). The ``--baseline`` width on whole faces (on the first
crop size when 0 is not among them) at the first batch size is the reference of the printed
ratios. ``--rows`` turns speed into the epochs a 60-minute
budget would buy on a training set of that size (57,418 rows: the fer2013 recipe's 1:1
clean/occluded mix). ``--profile`` also profiles one more epoch of the baseline
(``torch.profiler``, CPU) and reports where its time went: the share of each operator and of
each feature-map size (the spatial size of an operator's first 4-D input, so a convolution's
or batch norm's backward counts at the size of its map), the evidence for deciding where a
network can take capacity cheaply on the machine at hand. ``--name`` names the results file
(default ``train_width_<arch>``, ``_bf16`` appended for bf16), so a second kind of CPU keeps
its own file beside the first's. ``--shapes NAME=JSON`` measures networks of other shapes
beside the widths, each named and given as the architecture's keyword arguments (the
``train.overrides.<arch>`` a recipe would set, e.g. ``channels`` and ``block_convs``): where
the profile shows the cheap and the dear layers, this measures what moving capacity between
them costs; ``--baseline`` may name one. A shape's ``"arch"`` key builds another
architecture (``{"arch": "resnet_cnn", "width": 0.5}``), so two zoo entries are compared in
the same alternating runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from collections import defaultdict
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
from components.errors import ConfigError  # noqa: E402
from components.models import create_model  # noqa: E402
from components.training.config import TrainConfig  # noqa: E402
from components.training.data import SplitData  # noqa: E402
from components.training.trainer import Trainer, seed_everything  # noqa: E402

CLASSES = 7
FACE_PX = 48
BUDGET_SECONDS = 3600
PRECISION_NAMES = {"fp32": "float32", "bf16": "bf16 autocast"}
PROFILE_TOP_OPS = 12


def parameter_count(arch: str, kwargs: dict) -> int:
    """Trainable parameters of ``arch`` built with ``kwargs`` (grey input, 7 classes)."""
    model = create_model(arch, CLASSES, 1, **kwargs)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


Variant = tuple[str, int, int]  # (network label, crop, batch size)


def variant_key(net: str | float, crop: int, batch: int | None = None) -> str:
    """A variant's key in the results: the network (its width, or a shape's name) alone on
    whole faces at the first batch size (``batch`` None), the crop and the batch size named
    where they differ."""
    key = str(net) if crop == 0 else f"{net} crop {crop}"
    return key if batch is None else f"{key} batch {batch}"


Network = tuple[str, dict]  # (architecture, its keyword arguments)


def networks(args: argparse.Namespace) -> dict[str, Network]:
    """Every network measured, by label: ``--arch`` at the widths (labelled by the width),
    then the named shapes, each an architecture and its keyword arguments."""
    return {**{str(width): (args.arch, {"width": width}) for width in args.widths},
            **args.shapes}


def variants(args: argparse.Namespace) -> list[Variant]:
    """Every (network, crop, batch size) measured, networks outermost."""
    return [(net, crop, batch) for net in networks(args) for crop in args.crops
            for batch in args.batch_size]


def key_of(args: argparse.Namespace, variant: Variant) -> str:
    """``variant``'s key: its batch size named unless it is the first one given."""
    net, crop, batch = variant
    return variant_key(net, crop, None if batch == args.batch_size[0] else batch)


def one_epoch(args: argparse.Namespace, variant: Variant, train: SplitData) -> float:
    """Images per second of one trainer epoch (validation on 2 samples, no checkpoint)."""
    net, crop, batch = variant
    seed_everything(0)
    arch, kwargs = networks(args)[net]
    model = create_model(arch, CLASSES, 1, **kwargs)
    cfg = TrainConfig(epochs=1, batch_size=batch, optimizer="sgd", lr=0.01,
                      schedule="none", patience=0, mirror=True, precision=args.precision,
                      crop=crop, progress=False, track=False)
    tiny = SplitData.from_arrays(train.rows(slice(0, 2)), train.y[:2], name="tiny")
    start = time.perf_counter()
    Trainer(model, cfg).fit(train, tiny)
    return len(train) / (time.perf_counter() - start)


def map_label(input_shapes: list) -> str:
    """The feature-map size an operator worked on: its first 4-D input's H x W."""
    for shape in input_shapes or []:
        if isinstance(shape, (list, tuple)) and len(shape) == 4:
            return f"{shape[2]}x{shape[3]}"
    return "no 4-D input"


def profile_epoch(args: argparse.Namespace, variant: Variant,
                  train: SplitData) -> dict[str, list[tuple[str, float]]]:
    """Shares of one epoch's operator time (self CPU time, the profiler's own overhead
    included alike everywhere) by operator and by feature-map size: (name, share) pairs,
    largest first (pairs, since the results file sorts a mapping's keys)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        one_epoch(args, variant, train)
    by_op: dict[str, float] = defaultdict(float)
    by_map: dict[str, float] = defaultdict(float)
    for event in prof.key_averages(group_by_input_shape=True):
        by_op[event.key] += event.self_cpu_time_total
        by_map[map_label(event.input_shapes)] += event.self_cpu_time_total
    total = sum(by_op.values()) or 1.0

    def shares(times: dict[str, float]) -> list[tuple[str, float]]:
        return [(k, v / total) for k, v in sorted(times.items(), key=lambda kv: -kv[1])]

    return {"by_operator": shares(by_op), "by_map": shares(by_map)}


def profile_lines(profile: dict[str, list[tuple[str, float]]], key: str) -> list[str]:
    """The profile's two tables for people: maps whole, operators down to the top few."""
    maps = [f"| {name} | {share:.1%} |" for name, share in profile["by_map"]]
    ops = [f"| `{name}` | {share:.1%} |"
           for name, share in profile["by_operator"][:PROFILE_TOP_OPS]]
    return ["", f"## Where one epoch of {key} spent its time (torch.profiler, self CPU "
            "time)", "", "| feature map (H x W of the first 4-D input) | share |", "|---|---|",
            *maps, "", f"| operator (top {PROFILE_TOP_OPS}) | share |", "|---|---|", *ops]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="baseline_cnn")
    parser.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.375, 0.5])
    parser.add_argument("--baseline", default="0.5",
                        help="the reference of the ratios: one of --widths or a --shapes name")
    parser.add_argument("--shapes", nargs="+", default=[], metavar="NAME=JSON",
                        help="networks of other shapes, measured beside the widths: a name "
                        "and the architecture's keyword arguments as a JSON object")
    parser.add_argument("--crops", type=int, nargs="+", default=[0],
                        help="train.crop sizes to measure at every width (0: whole faces)")
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[64],
                        help="batch sizes to measure at every width and crop (the first is "
                        "the baseline's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=57418)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="the trainer's precision (bf16: autocast; results file "
                        "train_width_<arch>_bf16)")
    parser.add_argument("--name", default=None, type=results_name,
                        help="results file name (default train_width_<arch>[_bf16])")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one epoch of the baseline: time by operator and "
                        "by feature-map size")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR,
                        help="where the results files go (default benchmarks/results)")
    args = parser.parse_args(argv)
    args.shapes = parse_shapes(parser, args.arch, args.shapes)
    args.baseline = width_label(args.baseline)
    if args.baseline not in networks(args):
        parser.error(f"--baseline {args.baseline} must be one of --widths {args.widths} or a "
                     f"--shapes name {sorted(args.shapes)}")
    if any(crop < 0 or crop >= FACE_PX for crop in args.crops):
        parser.error(f"--crops {args.crops}: each must be 0 (whole faces) or 1-{FACE_PX - 1}")
    if min(args.batch_size) < 1:
        parser.error(f"--batch-size {args.batch_size}: each must be >= 1")
    args.crops = list(dict.fromkeys(args.crops))
    args.batch_size = list(dict.fromkeys(args.batch_size))
    return args


def is_number(text: str) -> bool:
    """Whether ``text`` reads as a number (and so as a width's label)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def width_label(text: str) -> str:
    """``--baseline`` as the label its network has: a width as ``str(float)`` (so 0.50
    names width 0.5), anything else as given (a shape's name)."""
    return str(float(text)) if is_number(text) else text


def parse_shapes(parser: argparse.ArgumentParser, default_arch: str,
                 items: list[str]) -> dict[str, Network]:
    """``--shapes`` as {name: (architecture, keyword arguments)}, each checked by building
    the network, so a misspelt argument or architecture fails here with its name, not after
    the warm-up. The architecture is the JSON's ``"arch"`` (``--arch`` without one)."""
    shapes: dict[str, Network] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            parser.error(f"--shapes {item!r}: expected NAME=JSON, e.g. "
                         "'late_wide={\"width\": 1.0, \"channels\": [32, 64, 160, 320]}'")
        if name in shapes or is_number(name):
            parser.error(f"--shapes {name!r}: names must be unique and not numbers (a width's "
                         "label is its number)")
        try:
            kwargs = json.loads(text)
        except json.JSONDecodeError as err:
            parser.error(f"--shapes {name}: not JSON ({err})")
        if not isinstance(kwargs, dict):
            parser.error(f"--shapes {name}: expected a JSON object of keyword arguments, "
                         f"got {text}")
        arch = kwargs.pop("arch", default_arch)
        try:
            create_model(arch, CLASSES, 1, **kwargs)
        except (ConfigError, TypeError, ValueError) as err:
            parser.error(f"--shapes {name}: {arch} refuses {text}: {err}")
        shapes[name] = (arch, kwargs)
    return shapes


def baseline_key(args: argparse.Namespace) -> str:
    """The reference of the ratios: the baseline network, on whole faces when measured."""
    return variant_key(args.baseline, 0 if 0 in args.crops else args.crops[0])


def baseline_name(args: argparse.Namespace) -> str:
    """The baseline for people: "width 0.5" or a shape's name."""
    key = baseline_key(args)
    return key if args.baseline in args.shapes else f"width {key}"


def markdown(command: str, payload: dict, args: argparse.Namespace) -> str:
    """The results table for people."""
    machine = payload["machine"]
    rows = []
    for net, crop, batch in variants(args):
        key = key_of(args, (net, crop, batch))
        rows.append(f"| {net} | {crop or f'{FACE_PX} (whole)'} | {batch} | "
                    f"{payload['parameters'][net]:,} | {payload['median'][key]:.0f} | "
                    f"{payload['ratio_to_baseline'][key]:.2f}x | "
                    f"{payload['epochs_per_hour'][key]:.1f} |")
    profile = payload.get("profile")
    return "\n".join([
        f"# Trainer throughput by width{' and shape' if args.shapes else ''}: {args.arch}", "",
        f"- command: `{command}`", f"- commit: `{payload['commit']}`",
        f"- machine: {machine['cpu']}, {machine['cpu_count']} cores, torch {machine['torch']} "
        f"({machine['torch_threads']} threads), native bf16: {machine['native_bf16']} "
        f"(flags: {', '.join(machine['cpu_bf16_flags']) or 'none'})",
        f"- {PRECISION_NAMES[args.precision]}, batch {', '.join(map(str, args.batch_size))}, "
        f"{args.samples} random "
        f"{FACE_PX}x{FACE_PX} grey samples, median of {args.repeats} alternating runs; "
        f"baseline: {baseline_name(args)}, batch {args.batch_size[0]}",
        *[f"- {name}: {arch} `{json.dumps(kwargs)}`"
          for name, (arch, kwargs) in args.shapes.items()], "",
        f"| width or shape | training crop (px) | batch | parameters | images/s | speed vs "
        f"{baseline_key(args)} | epochs of {args.rows:,} rows in 60 min |",
        "|---|---|---|---|---|---|---|", *rows, "",
        "Speed ratios were measured in the same run; epochs per hour ignore validation time.",
        *(profile_lines(profile, baseline_name(args)) if profile else []),
    ])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    command = shlex.join(["python", "benchmarks/train_width.py",
                          *(sys.argv[1:] if argv is None else argv)])
    print("command: " + command)
    rng = np.random.default_rng(0)
    x = rng.random((args.samples, 1, FACE_PX, FACE_PX), dtype=np.float32)
    train = SplitData.from_arrays(x, rng.integers(0, CLASSES, args.samples), name="random48")
    for variant in variants(args):  # warm-up: kernel selection for every variant's shapes
        one_epoch(args, variant, train)
    speeds: dict[str, list[float]] = {key_of(args, v): [] for v in variants(args)}
    for _ in range(args.repeats):
        for variant in variants(args):
            speeds[key_of(args, variant)].append(one_epoch(args, variant, train))
    medians = {w: statistics.median(v) for w, v in speeds.items()}
    base = medians[baseline_key(args)]
    payload = {
        "command": command, "commit": git_commit(REPO_ROOT), "machine": machine_facts(),
        "settings": {k: v for k, v in vars(args).items() if k != "out_dir"},
        "images_per_second": speeds, "median": medians,
        "parameters": {net: parameter_count(arch, kwargs)
                       for net, (arch, kwargs) in networks(args).items()},
        "ratio_to_baseline": {w: m / base for w, m in medians.items()},
        "epochs_per_hour": {w: m * BUDGET_SECONDS / args.rows for w, m in medians.items()},
    }
    if args.profile:
        baseline = next(v for v in variants(args) if key_of(args, v) == baseline_key(args))
        payload["profile"] = profile_epoch(args, baseline, train)
    text = markdown(command, payload, args)
    print(text)
    suffix = "" if args.precision == "fp32" else f"_{args.precision}"
    name = args.name or f"train_width_{args.arch}{suffix}"
    for path in write_results(name, payload, text, args.out_dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
