"""The real FER2013: its known duplicates, leakage, label conflicts and blanks are found fast."""

from __future__ import annotations

import time

import numpy as np

from components.data.manifest import content_hash, write_manifest
from components.data.sources.fer2013 import load_fer2013
from components.validation.facts import block_hashes
from pipelines.validate import run_validate


def test_block_hashes_equal_the_manifest_content_hash():
    block = np.random.default_rng(0).integers(0, 256, size=(5, 48, 48), dtype=np.uint8)
    assert block_hashes(block) == [content_hash(row) for row in block]


def test_fer2013_findings_and_speed(fer2013_dir, tmp_path):
    started = time.perf_counter()
    manifest = load_fer2013(fer2013_dir / "fer2013.csv.gz", tmp_path / "store")
    manifest_path = write_manifest(manifest, tmp_path / "ingest" / "manifest.parquet")
    ingested = time.perf_counter()
    params = {"validate": {"min_samples_per_class": 5, "blank_std_threshold": 2.0}}
    result = run_validate(params, manifest_path, tmp_path / "validate", progress=False)
    validate_s = time.perf_counter() - ingested
    total_s = time.perf_counter() - started

    dup = result.report["duplicates"]
    print(f"\nFER2013: ingest {ingested - started:.1f}s, validate {validate_s:.1f}s; "
          f"{dup['n_groups']} duplicate groups ({dup['n_rows']} rows), "
          f"{dup['n_cross_split_groups']} cross-split, {dup['n_conflicting_groups']} conflicting, "
          f"{result.report['blank']['n']} blank; excluded {result.report['excluded']['by_reason']}")
    assert result.passed and result.report["n_samples"] == 35887
    assert result.report["n_decode_errors"] == 0
    assert result.report["modalities"]["color"] == [{"shape": "48x48x1", "count": 35887}]
    assert 1200 <= dup["n_groups"] <= 1800
    assert 200 <= dup["n_cross_split_groups"] <= 900
    assert 5 <= dup["n_conflicting_groups"] <= 80
    assert 5 <= result.report["blank"]["n"] <= 30
    by_reason = result.report["excluded"]["by_reason"]
    assert by_reason["blank"] == result.report["blank"]["n"]
    assert by_reason["leakage"] >= dup["n_cross_split_groups"] - dup["n_conflicting_groups"]
    # leakage is removed from evaluation splits only: train keeps every non-blank, non-conflict
    excluded = result.excluded
    assert set(excluded.loc[excluded["reason"] == "leakage", "split"]) <= {"val", "test"}
    # the checks agree with the manifest the source wrote: no stale hashes or sizes
    assert not {"stale_hash", "manifest_size"} & {f.check for f in result.findings}
    assert validate_s < 30, f"validation took {validate_s:.1f}s (budget 30s)"
    assert total_s < 60, f"ingest + validation took {total_s:.1f}s (budget 60s)"
