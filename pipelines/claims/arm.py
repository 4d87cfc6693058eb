"""Claims step ``arm``: train and evaluate one arm with one seed, through the stages' CLIs
(``pipelines.train`` then ``pipelines.evaluate``) on the arm's composed params, then distil
the run into its measurement record (``claims/measured``, kept in git)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from pipelines.claims import run_stage


def run_arm(root: Path, arm: str, seed: int) -> dict[str, object]:
    """Train and evaluate ``arm`` with ``seed`` in its scratch folder, write its record and
    its cost (CPU and wall seconds, the machine, the commit whose code ran); returns the cost.

    Raises:
        DataError: an unknown arm, or a stage that failed.
    """
    import yaml

    from components.claims.dag import RUN_OUTPUTS
    from components.claims.record import (
        build_record,
        cost_path,
        planned_epochs,
        read_json,
        record_path,
    )
    from components.claims.spec import arm_dir, compose_arm, load_spec, stage_dirs
    from components.errors import DataError
    from components.jsonio import write_json
    from components.machine import cpu_model, git_commit

    spec = load_spec(root / "claims" / "params.yaml")
    if arm not in spec.arms:
        raise DataError(f"--arm {arm!r}: unknown; declared: {sorted(spec.arms)}")
    out = root / arm_dir(arm, seed)
    shutil.rmtree(out, ignore_errors=True)  # scratch: nothing of an earlier run is read
    params = out / "params.yaml"
    params.parent.mkdir(parents=True, exist_ok=True)
    params.write_text(compose_arm(root, spec, arm, seed), encoding="utf-8")
    data = stage_dirs(spec, spec.arms[arm].variant)
    arch = spec.arms[arm].arch
    # the code that runs: the records, lock and report this claims run rewrites are not code
    commit = git_commit(root, ignore=[path.as_posix() for path in RUN_OUTPUTS])
    started, cpu = time.perf_counter(), time.process_time()
    run_stage("train", ["--params", params, "--arch", arch, "--data", data["preprocess"],
                        "--out", out / "train" / arch, "--tune-dir", out / "untuned"])
    run_stage("evaluate", ["--params", params, "--train", out / "train",
                           "--data", data["preprocess"], "--out", out / "evaluate",
                           "--manifest", data["augment"] / "manifest.parquet"])
    write_groups(out / "train" / arch, out / "evaluate" / "groups.json")
    cost = {"cpu_seconds": round(time.process_time() - cpu, 1),
            "wall_seconds": round(time.perf_counter() - started, 1),
            "machine": f"{cpu_model()}, {os.cpu_count()} cores, no GPU",
            "commit": commit}
    epochs = planned_epochs(yaml.safe_load(params.read_text()), arch)
    metrics = read_json(out / "train" / arch / "metrics.json") or {}
    record = build_record(out / "evaluate", metrics, arch, epochs)
    write_json(root / record_path(arm, seed), record)
    write_json(root / cost_path(arm, seed), cost)
    return cost


def write_groups(run_dir: Path, out: Path) -> None:
    """The expression groups of a hierarchical model by class name, as the clean-test
    confusion counts name the classes (claim 13's within-group confusion); nothing for a
    model without groups."""
    from components.jsonio import write_json
    from components.models import expression_groups

    groups = expression_groups(run_dir)
    if groups is not None:
        write_json(out, {"groups": groups})
