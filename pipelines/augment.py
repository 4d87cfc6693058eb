"""DVC stage ``augment`` (seed 003): validated manifest -> occluded twins mixed 1:1.

Outputs in ``--out`` (default ``artifacts/augment``): ``manifest.parquet`` (clean rows, one
occluded twin per train/val row, and the evaluation-only occluded test rows
``<id>__occ<pct>``), ``images/`` (the occluded PNGs; depth as 16-bit PNG), ``report.json`` and
``metrics.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.config import load_params, section
from components.errors import ConfigError
from components.jsonio import write_json
from pipelines._common import run_cli, stage_parser

if TYPE_CHECKING:
    from components.augment import AugmentResult

log = logging.getLogger("ferops.augment")

RAW_DATA_DIR = "data"


def run_augment(
    params: dict[str, Any],
    manifest: str | Path,
    out_dir: str | Path,
    *,
    progress: bool = True,
) -> AugmentResult:
    """Occlude the samples of ``manifest`` with the ``augment`` params section, write outputs.

    Raises:
        ConfigError: bad params, or an output folder inside the raw ``data/`` folder.
        DataError: the manifest or one of its images cannot be read.
    """
    from components.augment import augment_config, augment_manifest
    from components.data.manifest import read_manifest, write_manifest

    cfg = augment_config(params)
    out_dir = Path(out_dir)
    raw = (Path.cwd() / RAW_DATA_DIR).resolve()
    if out_dir.resolve() == raw or raw in out_dir.resolve().parents:
        raise ConfigError(f"--out {out_dir}: raw data under {RAW_DATA_DIR}/ is never written")
    frame = read_manifest(manifest)
    result = augment_manifest(frame, cfg, out_dir, progress=progress)
    write_manifest(result.manifest, out_dir / "manifest.parquet")
    write_json(out_dir / "report.json", result.report)
    write_json(out_dir / "metrics.json", result.metrics)
    log.info(
        "augment: %d rows in, %d out (%d occluded) -> %s",
        len(frame),
        len(result.manifest),
        int(result.manifest["occluded"].sum()),
        out_dir,
    )
    return result


def _body(argv: Sequence[str] | None) -> int:
    parser = stage_parser("Occlude every train/val sample once (1:1 mix) and build occluded tests.")
    parser.add_argument(
        "--manifest", default="artifacts/validate/manifest.parquet", help="validated manifest"
    )
    parser.add_argument("--out", default="artifacts/augment", help="output folder")
    args = parser.parse_args(argv)
    run_augment(section(load_params(args.params), "augment"), args.manifest, args.out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m pipelines.augment``."""
    return run_cli(_body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
