"""DVC stage ``ingest``: the configured raw source -> ``artifacts/ingest/manifest.parquet``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from components.config import build_config, load_params, section
from components.jsonio import write_json
from pipelines._common import run_cli, stage_parser

if TYPE_CHECKING:
    import pandas as pd

    from components.data.sources import IngestConfig

log = logging.getLogger("ferops.ingest")


def run_ingest(
    cfg: IngestConfig, out_dir: str | Path, dvc_file: str | Path = "data.dvc"
) -> pd.DataFrame:
    """Ingest the source and write the manifest plus a small summary next to it.

    The summary carries the md5 ``dvc_file`` records for the raw data: training runs read
    their data version from here (a declared dependency) rather than from ``data.dvc``.
    """
    from components.data.manifest import manifest_digest, write_manifest
    from components.data.sources import ingest
    from components.data.version import MD5_KEY, dvc_data_md5

    out_dir = Path(out_dir)
    frame = ingest(cfg, out_dir)
    write_manifest(frame, out_dir / "manifest.parquet")
    summary = {
        "source": cfg.source,
        "n_samples": int(len(frame)),
        "digest": manifest_digest(frame),
        "per_split": frame["split"].value_counts().sort_index().to_dict(),
        "per_label": frame["label"].value_counts().sort_index().to_dict(),
        "left_out": frame.attrs.get("left_out") or {},
        MD5_KEY: dvc_data_md5(Path(dvc_file)),
    }
    write_json(out_dir / "summary.json", summary)
    log.info("ingested %d samples from %s (%s)", len(frame), cfg.path, cfg.source)
    for reason, entry in summary["left_out"].items():
        log.warning("left out %d (%s), e.g. %s", entry["count"], reason,
                    ", ".join(entry["examples"][:3]))
    return frame


def _body(argv: Sequence[str] | None) -> int:
    parser = stage_parser("Ingest the configured raw source into a sample manifest.")
    parser.add_argument("--out", default="artifacts/ingest", help="output folder")
    parser.add_argument("--dvc-file", default="data.dvc",
                        help="the DVC file tracking the raw data (its md5 goes to the summary)")
    args = parser.parse_args(argv)
    from components.data.sources import IngestConfig

    cfg = build_config(IngestConfig, section(load_params(args.params), "ingest"), where="ingest")
    run_ingest(cfg, args.out, args.dvc_file)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m pipelines.ingest``."""
    return run_cli(_body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
