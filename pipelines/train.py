"""DVC stage ``train`` (one per architecture): fit a model on the preprocessed arrays.

    python -m pipelines.train --arch baseline_cnn [--params params.yaml]
        [--data artifacts/preprocess] [--out artifacts/train/<arch>] [--resume]

Multi-process on CPU (DistributedDataParallel, gloo; rank 0 writes the outputs):

    torchrun --nproc_per_node=2 -m pipelines.train --arch baseline_cnn

Writes ``model.pt`` (torch: state dict + spec to rebuild) or ``model.pkl`` (estimators),
``metrics.json``, ``per_class.json``, ``history.csv``, ``plots/*.png`` and, for torch models,
``checkpoint.pt`` (what ``--resume`` continues from). A model whose modalities the data lacks
(e.g. depth on FER2013) is skipped: exit 0 with ``metrics.json`` saying why.

Every run that trains is tracked in MLflow (rank 0 only; ``train.track: false`` turns it
off): params, data lineage, per-epoch curves, test scores, plots and the model, whose URI
goes to ``artifacts/tracking/train/<arch>.json``. ``MLFLOW_TRACKING_URI`` picks the store
(default: the project's ``mlflow.db``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.errors import ConfigError
from pipelines._common import relaunch_for_arch, require_isa, run_cli, stage_parser

if TYPE_CHECKING:
    from components.training.distributed import DistContext
    from components.training.trainer import EpochCallback

log = logging.getLogger("pipelines.train")


def train_stage(
    params: dict[str, Any],
    arch: str,
    data_dir: Path,
    out_dir: Path,
    *,
    resume: bool = False,
    tune_dir: Path = Path("artifacts/tune"),
    on_epoch_end: EpochCallback | None = None,
    ctx: DistContext | None = None,
) -> dict[str, Any]:
    """Train ``arch`` from the ``train`` params section and write its outputs.

    Returns:
        The metrics written to ``out_dir/metrics.json`` (``{"skipped": True, ...}`` when the
        data lacks the model's modalities).

    Raises:
        ConfigError: unknown architecture or bad params.
        DataError: unreadable preprocessed arrays.
    """
    # Imported here, not at the top, so ``--help`` answers without loading torch or MLflow.
    from components.config import section
    from components.models import (
        MODEL_INPUTS,
        ModelSpec,
        create_classifier,
        named_kwargs,
        seeded_kwargs,
        training_needs,
    )
    from components.models.prior import log_class_prior
    from components.tracking.training_run import (
        RunSetup,
        compute_tags,
        tracked_training,
        write_untracked_record,
    )
    from components.training.config import resolve_config
    from components.training.data import (
        choose_task,
        load_split,
        no_task_reason,
        read_meta,
        task_name,
    )
    from components.training.distributed import current_context
    from components.training.run import train_run, write_skipped
    from components.training.trainer import seed_everything

    ctx = ctx or current_context()
    if arch not in MODEL_INPUTS:
        raise ConfigError(f"--arch {arch!r}: unknown; choose from {sorted(MODEL_INPUTS)}")
    cfg, extra = resolve_config(section(params, "train"), arch,
                                Path(tune_dir) / arch / "chosen_params.json")
    require_isa(cfg.isa, "pipelines.train")
    grey = bool(extra.pop("grey", False))
    inputs = MODEL_INPUTS[arch]
    task_dir = choose_task(Path(data_dir), inputs, cfg.task)
    if task_dir is None:
        reason = no_task_reason(Path(data_dir), inputs)
        if not ctx.is_main:
            return {"skipped": True}
        write_untracked_record(out_dir, arch, f"skipped: {reason}")
        return write_skipped(out_dir, arch, reason)
    classes = read_meta(task_dir)["classes"]
    train_split = load_split(task_dir, "train", inputs, grey=grey)
    in_channels = train_split.in_channels
    needs = training_needs(arch)
    if not needs.distributed and not ctx.is_main:
        return {}  # it fits in one process; the other ranks have nothing to do
    extra = seeded_kwargs(arch, extra, cfg.seed)
    spec = ModelSpec(arch, len(classes), in_channels, inputs, task_name(task_dir, inputs),
                     list(classes), grey, dict(extra),
                     tta_mirror=cfg.tta_mirror and needs.test_time_views,
                     tta_shift=cfg.tta_shift if needs.test_time_views else 0,
                     prior_weight=cfg.prior_weight,
                     log_prior=(log_class_prior(train_split.y, len(classes)).tolist()
                                if cfg.prior_weight else None))
    log.info("training %s on %s (%d classes, %d input channels)", arch, task_dir,
             len(classes), in_channels)
    seed_everything(cfg.seed)
    classifier = create_classifier(arch, len(classes), in_channels, mirror=spec.tta_mirror,
                                   shift=spec.tta_shift, prior=spec.prior(),
                                   **named_kwargs(arch, extra, classes))
    setup = RunSetup(spec, cfg, task_dir, Path(out_dir), params)
    with tracked_training(setup, enabled=cfg.track and ctx.is_main) as run:
        timings: dict[str, float] = {}
        metrics = train_run(classifier, spec, cfg, task_dir, out_dir, resume=resume,
                            on_epoch_end=on_epoch_end,
                            on_timings=run.log_timings if run is not None else timings.update,
                            ctx=ctx)
        if run is not None:
            # MLflow loads only for a tracked run: with ``train.track: false`` the stage
            # runs where MLflow is not installed (a rented GPU machine, say).
            from components.serving.pyfunc import log_serving_model

            run.log_results(metrics, partial(
                log_serving_model, preprocess_values=params.get("preprocess") or {},
                serving_values=params.get("serving") or {}))
        elif ctx.is_main:
            write_untracked_record(out_dir, arch, "tracking off (train.track: false)",
                                   timings=timings, computed_on=compute_tags(cfg))
    return metrics


def _body(argv: Sequence[str] | None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--arch", required=True, help="architecture name (MODEL_INPUTS key)")
    parser.add_argument("--data", default="artifacts/preprocess", help="preprocessed arrays")
    parser.add_argument("--out", default=None, help="run folder (default artifacts/train/<arch>)")
    parser.add_argument("--tune-dir", default="artifacts/tune", help="tuner outputs")
    parser.add_argument("--resume", action="store_true", help="continue from checkpoint.pt")
    args = parser.parse_args(argv)
    from components.config import load_params, section
    from components.training.config import resolve_config
    from components.training.distributed import init_distributed
    from components.training.distributed import shutdown as dist_shutdown

    params = load_params(args.params)
    relaunch_for_arch(params, args.arch, "pipelines.train", argv)
    ctx = init_distributed(resolve_config(section(params, "train"), args.arch, None)[0].device)
    try:
        out = Path(args.out or f"artifacts/train/{args.arch}")
        metrics = train_stage(params, args.arch, Path(args.data), out,
                              resume=args.resume, tune_dir=Path(args.tune_dir), ctx=ctx)
    finally:
        dist_shutdown(ctx)
    if ctx.is_main:
        if metrics.get("skipped"):
            print(f"{args.arch}: skipped: {metrics.get('reason')}")
        else:
            shown = {k: v for k, v in metrics.items() if k.startswith("test_")}
            print(f"{args.arch}: " + ", ".join(f"{k}={v:.4f}" for k, v in shown.items()
                                               if isinstance(v, float)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m pipelines.train``."""
    return run_cli(_body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
