"""DVC stage ``tune`` (one per architecture): an Optuna study over params.yaml's search space.

    python -m pipelines.tune --arch baseline_cnn [--params params.yaml]
        [--data artifacts/preprocess] [--out artifacts/tune/<arch>] [--n-trials N]

Writes ``chosen_params.json`` (merged by the train stage when ``train.use_tuned``),
``study.json``, ``plots/*.png`` and the study journal ``journal.log``. Rerunning by hand adds
trials to the same study (DVC clears the folder first, so each ``dvc repro`` of the stage is
a fresh, seeded study). Several workers share one study through an RDB:

    OPTUNA_STORAGE=postgresql://user@host/db python -m pipelines.tune --arch baseline_cnn

An architecture whose modalities the data lacks is skipped: exit 0, ``study.json`` says why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from components.config import load_params, section
from components.errors import ConfigError
from pipelines._common import relaunch_for_arch, require_isa, run_cli, stage_parser

log = logging.getLogger("pipelines.tune")


def tune_stage(
    params: dict[str, Any],
    arch: str,
    data_dir: Path,
    out_dir: Path,
    *,
    n_trials: int | None = None,
    storage: str | None = None,
) -> dict[str, Any]:
    """Tune ``arch`` from the ``tune`` (budget, spaces) and ``train`` (base settings) sections.

    Args:
        n_trials: trials to add (default ``tune.n_trials``).
        storage: an RDB URL overriding ``$OPTUNA_STORAGE`` and the journal file.

    Returns:
        The ``study.json`` content (``{"skipped": True, ...}`` when the data lacks the
        model's modalities).

    Raises:
        ConfigError: unknown architecture, bad params or storage URL.
        DataError: unreadable preprocessed arrays.
    """
    # Imported here, not at the top, so ``--help`` answers without loading torch.
    from components.models import MODEL_INPUTS
    from components.tracking.lineage import task_dataset
    from components.training.config import resolve_config
    from components.training.data import choose_task, no_task_reason
    from components.tuning import tune_architecture, tune_config, write_skipped

    if arch not in MODEL_INPUTS:
        raise ConfigError(f"--arch {arch!r}: unknown; choose from {sorted(MODEL_INPUTS)}")
    if n_trials is not None and n_trials < 1:
        raise ConfigError(f"--n-trials: must be >= 1, got {n_trials}")
    cfg = tune_config(section(params, "tune"))
    cfg.space(arch)  # a missing or malformed space fails even when the data is skipped
    train_values = section(params, "train")
    base, _ = resolve_config(train_values, arch, None)
    require_isa(base.isa, "pipelines.tune")
    inputs = MODEL_INPUTS[arch]
    task_dir = choose_task(Path(data_dir), inputs, base.task)
    if task_dir is None:
        return write_skipped(out_dir, arch, no_task_reason(Path(data_dir), inputs))
    return tune_architecture(arch, cfg, train_values, task_dir, Path(out_dir),
                             dataset=task_dataset(task_dir, params), n_trials=n_trials,
                             storage=storage)


def _body(argv: Sequence[str] | None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--arch", required=True, help="architecture name (MODEL_INPUTS key)")
    parser.add_argument("--data", default="artifacts/preprocess", help="preprocessed arrays")
    parser.add_argument("--out", default=None, help="study folder (default artifacts/tune/<arch>)")
    parser.add_argument("--n-trials", type=int, default=None, help="trials to add this run")
    parser.add_argument("--storage", default=None,
                        help="RDB URL shared by workers (default: $OPTUNA_STORAGE, else journal)")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    relaunch_for_arch(params, args.arch, "pipelines.tune", argv)
    out = Path(args.out or f"artifacts/tune/{args.arch}")
    summary = tune_stage(params, args.arch, Path(args.data), out,
                         n_trials=args.n_trials, storage=args.storage)
    if summary.get("skipped"):
        print(f"{args.arch}: skipped: {summary.get('reason')}")
    else:
        print(f"{args.arch}: {summary['n_trials']} trials ({summary['complete']} complete, "
              f"{summary['pruned']} pruned, {summary['failed']} failed); training takes "
              f"{summary['chosen_because']}, {summary['metric']}={summary['chosen_value']} "
              f"{summary['chosen_params']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m pipelines.tune``."""
    return run_cli(_body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
