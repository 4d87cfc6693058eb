"""DVC stage ``validate``: check the ingested manifest with Great Expectations.

Reads ``artifacts/ingest/manifest.parquet`` and the ``validate`` params section; writes
``manifest.parquet`` (validated, exclusions removed), ``report.json``, ``summary.md`` and
``metrics.json`` into ``--out``. Exits non-zero with one line pointing at the report when a
hard error (undecodable file, missing depth, bad label/split, too few samples) is found.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.config import load_params, section
from pipelines._common import run_cli, stage_parser

if TYPE_CHECKING:
    from components.validation import ValidationResult

log = logging.getLogger("ferops.validate")

DEFAULT_MANIFEST = "artifacts/ingest/manifest.parquet"
DEFAULT_OUT = "artifacts/validate"


def run_validate(
    params: dict[str, Any],
    manifest_path: str | Path = DEFAULT_MANIFEST,
    out_dir: str | Path = DEFAULT_OUT,
    *,
    progress: bool = True,
) -> ValidationResult:
    """Validate the manifest at ``manifest_path`` with ``params['validate']``.

    Returns:
        The :class:`~components.validation.ValidationResult`.

    Raises:
        ConfigError: the ``validate`` section is missing or has a bad key.
        DataError: the manifest file is missing or not a manifest.
        ValidationFailed: a hard error was found (the report is written first).
    """
    from components.data.manifest import read_manifest
    from components.validation import validate_manifest
    from components.validation.config import validate_config

    cfg = validate_config(section(params, "validate"))
    manifest = read_manifest(manifest_path)
    return validate_manifest(manifest, cfg, out_dir, source=str(manifest_path),
                             progress=progress)


def _body(argv: Sequence[str] | None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST,
                        help="ingested manifest (default: %(default)s)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    result = run_validate(load_params(args.params), args.manifest, args.out)
    warnings = sum(1 for f in result.findings if f.severity == "warning")
    log.info("validated %d samples: %d kept, %d excluded, %d warning check(s); report %s",
             result.report["n_samples"], len(result.manifest), len(result.excluded), warnings,
             result.paths["report"])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: ``python -m pipelines.validate [--params] [--manifest] [--out]``."""
    return run_cli(_body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
