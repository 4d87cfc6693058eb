"""FER2013 accuracy of the project's 2-D architectures under a fixed CPU time budget.

    python benchmarks/fer2013_accuracy.py [--data DIR] [--minutes 60] \
        [--archs baseline_cnn partition_cnn hierarchical] [--width 0.5] [--limit N]

Trains each architecture on the real FER2013 with the project's own components: the csv is
ingested by ``components.data.sources.fer2013.load_fer2013`` (array store in a temporary
folder, never inside the repository), the three official splits become float32 arrays in
[0, 1] with one channel (Training -> train, PublicTest -> val, PrivateTest -> test), and every
network goes through :class:`components.training.trainer.Trainer` (``hierarchical`` through
:func:`components.training.trainer.make_train_fn`-style sub-model fits, as
``components.training.run.train_estimator`` does). Augmentation is mirroring plus a small
random shift; SGD or AdamW with a one-cycle (or cosine) schedule and label smoothing.

Model selection uses PublicTest only (the trainer keeps the weights of the best monitored
validation epoch); PrivateTest is touched once per architecture, for the report.

Time budget: ``--minutes`` is split evenly across the architectures. Before each run a probe
trains a throwaway copy of the model on a slice of the first epoch and scores the validation
split, which gives the seconds per epoch; the epoch count (and so the learning-rate schedule)
is chosen to fit the budget, and training stops early, keeping the best validated weights,
if an epoch would run past it anyway (machine load varies).

Target (documented, not asserted): the best architecture reaches >= 68 % PrivateTest accuracy
within <= 60 minutes on 2 CPU cores. The reference rows printed beside the measurements are
published / external anchors, not measured by this script.

Prints the exact command line and machine facts, then a markdown table, and writes the same
rows as JSON to ``--out`` (default ``artifacts/benchmarks/fer2013_accuracy.json``).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from components.data.labels import CANONICAL_LABELS  # noqa: E402
from components.data.sources.fer2013 import load_fer2013  # noqa: E402
from components.errors import ConfigError, DataError  # noqa: E402
from components.models import create_model  # noqa: E402
from components.training.checkpoint import load_checkpoint  # noqa: E402
from components.training.config import TrainConfig  # noqa: E402
from components.training.data import SplitData  # noqa: E402
from components.training.metrics import classification_report  # noqa: E402
from components.training.trainer import Trainer, seed_everything  # noqa: E402

ARCHS: tuple[str, ...] = ("baseline_cnn", "partition_cnn", "hierarchical")
DEFAULT_OUT = Path("artifacts/benchmarks/fer2013_accuracy.json")
CSV_NAME = "fer2013.csv.gz"
SPLITS: tuple[str, ...] = ("train", "val", "test")
# Fixed reference rows: published or externally measured numbers, never computed here.
ANCHORS: tuple[dict[str, Any], ...] = (
    {
        "architecture": "fer package mini-Xception (external anchor, not measured)",
        "test_accuracy": 0.657,
        "test_uar": 0.638,
        "source": "measured on this data by the project's maintainers",
    },
    {
        "architecture": "best published single network (anchor, not measured)",
        "test_accuracy": 0.7328,
        "test_uar": None,
        "source": "Khaireddin & Chen 2021, VGGNet on FER2013",
    },
)
PROBE_FRACTION = 0.1  # share of the first epoch the probe trains to time it
PROBE_MIN_BATCHES = 12
PROBE_WARMUP_BATCHES = 2  # the first batches pay for allocation and kernel selection
# Epoch time varies with machine load; the plan leaves a margin because a run the budget
# guard cuts short never reaches the low-learning-rate end of its schedule.
PLAN_MARGIN = 1.05


class BudgetExhausted(Exception):
    """Raised from the epoch callback when the next epoch would overrun the deadline."""


@dataclass
class Splits:
    """FER2013's three official splits as float32 (N, 1, 48, 48) arrays in [0, 1]."""

    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    classes: list[str]

    def data(self, split: str) -> SplitData:
        """The split wrapped for the trainer."""
        return SplitData.from_arrays(self.x[split], self.y[split], name=f"fer2013/{split}")


def default_data_dir() -> Path:
    """``$FER2013_DIR``, else ``../shared/datasets/fer2013`` beside the repository."""
    env = os.environ.get("FER2013_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "datasets" / "fer2013"


def load_splits(data_dir: Path, store_dir: Path, limit: int | None, seed: int) -> Splits:
    """Ingest the csv with the project's FER2013 source and build the three split arrays.

    Args:
        data_dir: folder holding ``fer2013.csv.gz``.
        store_dir: where ``load_fer2013`` writes its pixel store (a temporary folder).
        limit: keep a seeded random ``limit`` training rows and ``limit // 4`` (at least 1)
            validation and test rows, for smoke runs; None keeps everything.
        seed: seeds the subsample.

    Returns:
        The splits, with classes in canonical label order.

    Raises:
        DataError: the csv is missing or malformed, or a split is empty.
    """
    csv = Path(data_dir) / CSV_NAME
    if not csv.is_file():
        raise DataError(f"{csv}: FER2013 csv not found (set --data or $FER2013_DIR)")
    manifest = load_fer2013(csv, store_dir)
    present = set(manifest["label"])
    classes = [c for c in CANONICAL_LABELS if c in present]
    index = {c: i for i, c in enumerate(classes)}
    rng = np.random.default_rng(seed)
    xs: dict[str, np.ndarray] = {}
    ys: dict[str, np.ndarray] = {}
    store_cache: dict[str, np.ndarray] = {}
    for split in SPLITS:
        rows = manifest[manifest["split"] == split]
        if limit is not None:
            keep = limit if split == "train" else max(1, limit // 4)
            take = np.sort(rng.permutation(len(rows))[:keep])
            rows = rows.iloc[take]
        if rows.empty:
            raise DataError(f"{csv}: split {split!r} has no rows")
        xs[split] = _pixels(rows["color"].tolist(), store_cache)
        ys[split] = np.array([index[label] for label in rows["label"]], dtype=np.int64)
    return Splits(xs, ys, classes)


def _pixels(refs: list[str], cache: dict[str, np.ndarray]) -> np.ndarray:
    """Float32 (N, 1, H, W) in [0, 1] from ``<store>.npy#<row>`` references."""
    out = []
    for ref in refs:
        store, _, row = ref.rpartition("#")
        if store not in cache:
            cache[store] = np.load(store, mmap_mode="r")
        out.append(cache[store][int(row)])
    return (np.stack(out).astype(np.float32) / 255.0)[:, None]


def train_config(args: argparse.Namespace, epochs: int) -> TrainConfig:
    """Trainer settings of every architecture: only ``epochs`` differs between runs."""
    return TrainConfig(
        seed=args.seed,
        epochs=max(1, epochs),
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        label_smoothing=args.label_smoothing,
        mirror=True,
        shift=args.shift,
        rotate=args.rotate,
        scale=args.scale,
        erase_p=args.erase,
        tta_mirror=args.tta,
        precision=args.precision,
        patience=0,  # the budget, not patience, ends a run; best val epoch is kept
        monitor=args.monitor,
        restore_best=True,
        progress=args.progress,
        track=False,
    )


def build_net(arch: str, n_classes: int, args: argparse.Namespace) -> nn.Module:
    """A fresh torch model of ``arch`` at ``--width`` with the ``--model-arg`` settings
    (deterministic in ``--seed``)."""
    seed_everything(args.seed)
    return create_model(arch, n_classes, 1, width=args.width, **args.model_args)


def parse_model_args(pairs: list[str]) -> dict[str, Any]:
    """``["dropout=0.3", "hidden=512"]`` -> ``{"dropout": 0.3, "hidden": 512}`` (YAML values).

    Raises:
        ConfigError: an item without ``=``.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--model-arg {pair!r}: expected KEY=VALUE")
        out[key] = yaml.safe_load(value)
    return out


def probe_epoch_seconds(
    factory: Callable[[], nn.Module], train: SplitData, val: SplitData, cfg: TrainConfig
) -> float:
    """Seconds one epoch (train + validation scoring) takes, timed on a throwaway model.

    A slice of the first epoch (``PROBE_FRACTION``, at least ``PROBE_MIN_BATCHES`` batches)
    is trained through the real :class:`Trainer` and extrapolated; the validation pass is
    timed whole. The rate is the difference between a short and a long run, both made after
    a discarded warm-up run, so per-run costs (model set-up, the first batches) cancel and
    one-off costs (kernel selection, cached process-wide) are not subtracted from it.
    """
    steps = math.ceil(len(train) / cfg.batch_size)
    batches = min(steps, max(PROBE_MIN_BATCHES, math.ceil(PROBE_FRACTION * steps)))
    n = min(len(train), batches * cfg.batch_size)
    short = min(n // 2, PROBE_WARMUP_BATCHES * cfg.batch_size)
    rows = np.random.default_rng(cfg.seed).permutation(len(train))
    x, y = train.rows(np.sort(rows[:n])), train.y[np.sort(rows[:n])]
    probe_cfg = cfg.replace(epochs=1, schedule="none", progress=False, restore_best=False)
    tiny = SplitData.from_arrays(x[:2], y[:2], name="probe/val")

    def timed(count: int) -> float:
        trainer = Trainer(factory(), probe_cfg)
        start = time.perf_counter()
        trainer.fit(SplitData.from_arrays(x[:count], y[:count], name="probe"), tiny)
        return time.perf_counter() - start

    timed(max(short, 2))  # warm-up: process-wide kernel selection, discarded
    short_s = timed(short) if short >= 2 else 0.0
    per_sample = max(timed(n) - short_s, 1e-6) / max(n - (short if short >= 2 else 0), 1)
    trainer = Trainer(factory(), probe_cfg)
    start = time.perf_counter()
    trainer.evaluate(val)
    val_s = time.perf_counter() - start
    return per_sample * len(train) + val_s


def budget_guard(deadline: float) -> Callable[[dict[str, Any]], None]:
    """An ``on_epoch_end`` callback that stops training when another epoch would overrun.

    It runs after the trainer wrote its checkpoint, so the best weights so far survive.
    """
    last = {"t": time.monotonic()}

    def check(row: dict[str, Any]) -> None:
        now = time.monotonic()
        epoch_s = now - last["t"]
        last["t"] = now
        if now + epoch_s > deadline:
            raise BudgetExhausted(f"stopped after epoch {row['epoch']}: budget spent")

    return check


def fit_within(
    model: nn.Module,
    cfg: TrainConfig,
    train: SplitData,
    val: SplitData,
    deadline: float,
    work_dir: Path,
) -> tuple[nn.Module, int, int]:
    """Train with the budget guard; return ``(best model, epochs run, best epoch)``.

    On :class:`BudgetExhausted` the best validated weights are read back from the trainer's
    checkpoint, exactly the weights ``restore_best`` would have restored.
    """
    trainer = Trainer(model, cfg, out_dir=work_dir)
    try:
        result = trainer.fit(train, val, on_epoch_end=budget_guard(deadline))
        return result.model.eval(), result.epochs_run, result.best_epoch + 1
    except BudgetExhausted:
        ckpt = load_checkpoint(trainer.checkpoint_path)
        model.load_state_dict(ckpt["best_state"] or ckpt["model"])
        return model.eval(), len(ckpt["history"]), int(ckpt["best_epoch"]) + 1


def run_torch(
    arch: str, splits: Splits, args: argparse.Namespace, budget_s: float, work_dir: Path
) -> dict[str, Any]:
    """Train one torch architecture inside ``budget_s`` and score PrivateTest."""
    start = time.monotonic()
    train, val = splits.data("train"), splits.data("val")
    n_classes = len(splits.classes)
    base = train_config(args, 1)
    epoch_s = probe_epoch_seconds(lambda: build_net(arch, n_classes, args), train, val, base)
    remaining = budget_s - (time.monotonic() - start)
    epochs = max(1, min(args.max_epochs, int(remaining // (epoch_s * PLAN_MARGIN))))
    cfg = base.replace(epochs=epochs)
    model, run, best = fit_within(
        build_net(arch, n_classes, args), cfg, train, val, start + budget_s, work_dir / arch
    )
    trainer = Trainer(model, cfg, splits.classes)
    report = trainer.evaluate(splits.data("test"))
    return _row(arch, report, time.monotonic() - start, run, epochs, best, epoch_s)


def run_hierarchical(
    splits: Splits, args: argparse.Namespace, budget_s: float, work_dir: Path
) -> dict[str, Any]:
    """Fit the hierarchical estimator inside ``budget_s`` and score PrivateTest.

    Its sub-models (``folds`` out-of-fold planar nets, the group net and one net per
    multi-member group) are trained one after another, so the epoch count is chosen from
    the probed epoch time scaled by the work of all of them, and each sub-model fit gets a
    deadline proportional to its share of the remaining work.
    """
    start = time.monotonic()
    n_classes = len(splits.classes)
    x, y = splits.x["train"], splits.y["train"]
    base = train_config(args, 1)
    train, val = splits.data("train"), splits.data("val")
    epoch_s = probe_epoch_seconds(
        lambda: build_net(args.hier_base, n_classes, args), train, val, base
    )
    # Sample-epochs per epoch: (folds - 1) x N out of fold, N for the group net and at most
    # N for the second nets.
    work_factor = args.folds + 1
    remaining = budget_s - (time.monotonic() - start)
    epochs = max(1, min(args.max_epochs,
                        int(remaining // (epoch_s * work_factor * PLAN_MARGIN))))
    cfg = base.replace(epochs=epochs, progress=False)
    state = {"work_left": float(work_factor * len(x)), "fits": 0, "epochs_run": 0}

    def train_fn(
        model: nn.Module,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
    ) -> nn.Module:
        now = time.monotonic()
        share = min(1.0, len(x_train) / max(state["work_left"], 1.0))
        deadline = now + max(0.0, start + budget_s - now) * share
        state["work_left"] = max(0.0, state["work_left"] - len(x_train))
        fit_train = SplitData.from_arrays(x_train, y_train, name="hierarchical/train")
        settings = cfg
        if x_val is None or y_val is None or len(y_val) == 0:
            fit_val, settings = fit_train, cfg.replace(restore_best=False)
        else:
            fit_val = SplitData.from_arrays(x_val, y_val, name="hierarchical/val")
        state["fits"] += 1
        fitted, run, _ = fit_within(
            model, settings, fit_train, fit_val, deadline, work_dir / f"hier{state['fits']}"
        )
        state["epochs_run"] = max(state["epochs_run"], run)
        return fitted

    estimator = create_model(
        "hierarchical", n_classes, 1, base=args.hier_base, folds=args.folds, seed=args.seed,
        class_names=splits.classes, width=args.width, **args.model_args,
    )
    estimator.fit(x, y, train_fn, splits.x["val"], splits.y["val"])
    proba = estimator.predict_proba(splits.x["test"])
    report = classification_report(splits.y["test"], proba.argmax(axis=1), splits.classes)
    row = _row("hierarchical", report, time.monotonic() - start, state["epochs_run"], epochs,
               None, epoch_s)
    row["sub_models"] = state["fits"]
    row["groups"] = [list(g) for g in estimator.groups_]
    return row


def _row(
    arch: str,
    report: dict[str, Any],
    seconds: float,
    epochs_run: int,
    epochs_planned: int,
    best_epoch: int | None,
    epoch_s: float,
) -> dict[str, Any]:
    return {
        "architecture": arch,
        "test_accuracy": report["accuracy"],
        "test_uar": report["uar"],
        "test_macro_f1": report["macro_f1"],
        "minutes": seconds / 60.0,
        "epochs": epochs_run,
        "epochs_planned": epochs_planned,
        "best_epoch": best_epoch,
        "probe_epoch_seconds": epoch_s,
        "per_class_recall": report["per_class_recall"],
        "measured": True,
    }


def machine_facts() -> dict[str, Any]:
    """Cores, torch threads and versions: what a reader needs to compare timings."""
    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Measured rows, then the anchor rows, as one markdown table."""
    lines = [
        "| architecture | PrivateTest accuracy | UAR | macro-F1 | minutes | epochs |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['architecture']} | {_pct(row['test_accuracy'])} | {_pct(row['test_uar'])}"
            f" | {_pct(row['test_macro_f1'])} | {row['minutes']:.1f} | {row['epochs']} |"
        )
    for anchor in ANCHORS:
        lines.append(
            f"| {anchor['architecture']} | {_pct(anchor['test_accuracy'])} | "
            f"{_pct(anchor['test_uar'])} | n/a | n/a | n/a |"
        )
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.2f} %"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="folder with fer2013.csv.gz (default $FER2013_DIR or "
                        "../shared/datasets/fer2013)")
    parser.add_argument("--minutes", type=float, default=60.0,
                        help="total budget, split evenly across --archs")
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    parser.add_argument("--width", type=float, default=0.5, help="model width multiplier")
    parser.add_argument("--limit", type=int, default=None,
                        help="subsample N train rows (N/4 val and test) for a smoke run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    parser.add_argument("--lr", type=float, default=0.05, help="peak learning rate")
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--schedule", choices=("onecycle", "cosine"), default="onecycle")
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--shift", type=int, default=4, help="max random shift in pixels")
    parser.add_argument("--rotate", type=float, default=10.0, help="max random rotation, deg")
    parser.add_argument("--scale", type=float, default=0.1, help="max random zoom (+/-)")
    parser.add_argument("--erase", type=float, default=0.5, help="random-erasing probability")
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True,
                        help="score val/test on the mean of each face and its mirror")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16",
                        help="bf16 autocast (fast on CPUs with AMX/AVX512-BF16)")
    parser.add_argument("--monitor", choices=("val_accuracy", "val_uar"),
                        default="val_accuracy", help="PublicTest score that picks the epoch")
    parser.add_argument("--max-epochs", type=int, default=120)
    parser.add_argument("--folds", type=int, default=2, help="hierarchical out-of-fold folds")
    parser.add_argument("--hier-base", default="baseline_cnn",
                        help="CNN of the hierarchical sub-models")
    parser.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="extra model setting, e.g. dropout=0.3 (repeatable)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--progress", action="store_true", help="show per-epoch bars")
    args = parser.parse_args(argv)
    args.model_args = parse_model_args(args.model_arg)
    if args.minutes <= 0 or (args.limit is not None and args.limit < 2):
        raise ConfigError("--minutes must be > 0 and --limit >= 2")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and write the JSON; returns the exit code."""
    args = parse_args(argv)
    # Per-epoch lines (train loss, monitored PublicTest score) from the trainer's logger.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(os.cpu_count() or 1)
    data_dir = args.data or default_data_dir()
    command = shlex.join(["python", "benchmarks/fer2013_accuracy.py",
                          *(sys.argv[1:] if argv is None else argv)])
    facts = machine_facts()
    print(f"command: {command}")
    print(f"machine: {facts['cpu_count']} cores, {facts['torch_threads']} torch threads, "
          f"torch {facts['torch']}, python {facts['python']}, {facts['platform']}")
    budget_s = 60.0 * args.minutes / len(args.archs)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fer2013_bench_") as tmp:
        work = Path(tmp)
        load_start = time.monotonic()
        splits = load_splits(data_dir, work / "store", args.limit, args.seed)
        load_s = time.monotonic() - load_start
        print(f"data: {data_dir} train {len(splits.y['train'])}, val (PublicTest) "
              f"{len(splits.y['val'])}, test (PrivateTest) {len(splits.y['test'])}; "
              f"classes {splits.classes}; loaded in {load_s:.0f} s (outside the budget); "
              f"budget {budget_s / 60:.1f} min per architecture")
        for arch in args.archs:
            if arch == "hierarchical":
                row = run_hierarchical(splits, args, budget_s, work)
            else:
                row = run_torch(arch, splits, args, budget_s, work)
            rows.append(row)
            print(f"{arch}: PrivateTest accuracy {_pct(row['test_accuracy'])}, "
                  f"{row['epochs']} epochs in {row['minutes']:.1f} min", flush=True)
    table = markdown_table(rows)
    print()
    print(table)
    best = max(rows, key=lambda r: r["test_accuracy"])
    print(f"\nbest: {best['architecture']} {_pct(best['test_accuracy'])} PrivateTest "
          f"(target >= 68 % within 60 min on 2 cores; documented, not asserted)")
    payload = {
        "command": command,
        "machine": facts,
        "data": str(data_dir),
        "load_seconds": load_s,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "rows": rows,
        "anchors": [copy.deepcopy(a) for a in ANCHORS],
        "table_markdown": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")
    return 0


def cli() -> int:
    """:func:`main` with bad input (options, data, model settings) as one ``error:`` line."""
    try:
        return main()
    except (ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(cli())
