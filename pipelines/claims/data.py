"""Claims step ``data``: a data variant's own stages (ingest ... preprocess, or the tail of
them it re-runs), through the stages' CLIs on the variant's composed params."""

from __future__ import annotations

import logging
from pathlib import Path

from pipelines.claims import run_stage

log = logging.getLogger("pipelines.claims")


def run_data(root: Path, variant: str) -> None:
    """Run ``variant``'s own data stages; its params go to ``<variant>/params.yaml``.

    Raises:
        DataError: an unknown variant, or a stage that failed.
    """
    from components.claims.spec import (
        compose_variant,
        load_spec,
        own_stages,
        stage_dirs,
        variant_dir,
    )
    from components.errors import DataError

    spec = load_spec(root / "claims" / "params.yaml")
    if variant not in spec.variants:
        raise DataError(f"--variant {variant!r}: unknown; declared: {sorted(spec.variants)}")
    params = variant_dir(variant) / "params.yaml"
    params.parent.mkdir(parents=True, exist_ok=True)
    params.write_text(compose_variant(root, spec, variant), encoding="utf-8")
    dirs = stage_dirs(spec, variant)
    commands = {
        "ingest": ["--out", dirs["ingest"]],
        "validate": ["--manifest", dirs["ingest"] / "manifest.parquet", "--out", dirs["validate"]],
        "augment": ["--manifest", dirs["validate"] / "manifest.parquet", "--out", dirs["augment"]],
        "preprocess": ["--manifest", dirs["augment"] / "manifest.parquet",
                       "--out", dirs["preprocess"]],
    }
    for stage in own_stages(spec, variant):
        log.info("claims data %s: %s", variant, stage)
        run_stage(stage, ["--params", params, *commands[stage]])
