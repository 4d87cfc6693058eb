"""DVC stage ``preprocess``: augmented manifest -> aligned, stretched, normalised arrays.

    python -m pipelines.preprocess [--params params.yaml] [--manifest M] [--out DIR]

Reads only the ``preprocess`` section of the params; all the work is in
:mod:`components.preprocess`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from components.config import load_params, section
from pipelines._common import run_cli, stage_parser

log = logging.getLogger(__name__)

DEFAULT_MANIFEST = "artifacts/augment/manifest.parquet"
DEFAULT_OUT = "artifacts/preprocess"


def run_preprocess(
    params: dict[str, Any], manifest_path: str | Path, out_dir: str | Path, *,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the stage from the ``preprocess`` params section; return the report.

    Raises:
        ConfigError: a bad key or value in the section.
        DataError: the manifest or an image it names cannot be read.
    """
    from components.data.manifest import read_manifest
    from components.preprocess import preprocess_config, preprocess_manifest

    config = preprocess_config(params)
    frame = read_manifest(manifest_path)
    return preprocess_manifest(frame, config, out_dir, progress=progress)


def _body(argv: Sequence[str] | None) -> int:
    parser = stage_parser("Align faces, stretch contrast and write the training arrays.")
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST, help="default: %(default)s")
    parser.add_argument("--out", default=DEFAULT_OUT, help="default: %(default)s")
    args = parser.parse_args(argv)
    params = section(load_params(args.params), "preprocess")
    report = run_preprocess(params, args.manifest, args.out)
    for task, splits in report["tasks"].items():
        for split, entry in splits.items():
            log.info("%s/%s: %d kept of %d, %d fallbacks, %d dropped, %s", task, split,
                     entry["kept"], entry["count"], entry["fallbacks"], entry["dropped"],
                     split_speed(entry))
    return 0


def split_speed(entry: dict) -> str:
    """The log's last field: the split's faces per second, or the split it was taken from (a
    derived split, such as ``test_dedup``, selects rows already aligned and times nothing)."""
    if entry.get("derived_from"):
        return f"rows of {entry['derived_from']}, not re-aligned"
    rate = entry.get("faces_per_s")
    return f"{rate} faces/s" if rate is not None else "not timed"


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; user errors print one line and exit 2."""
    return run_cli(_body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
