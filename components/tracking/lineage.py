"""Where a training run's data came from: the raw data version, the manifest, stage params.

A tracked run must say which data it saw, so a later reader can tell two runs on different
data apart even when their metrics look alike. The lineage is read from what the earlier
stages left behind, next to the preprocessed arrays (``artifacts/<stage>/...``):

* ``ingest/summary.json``: the md5 DVC computed for the raw ``data/`` folder (``data.dvc``),
  as the ingest stage recorded it;
* the newest manifest (``augment`` > ``validate`` > ``ingest``): its digest identifies the
  samples, splits and labels; without one, the preprocessed ids and labels stand in;
* ``meta.json`` of the task (preprocess params) and ``augment/report.json`` (augment params);
* ``validate/summary.md``: the human-readable validation report.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.data.manifest import manifest_digest, read_manifest
from components.data.version import ingested_data_md5
from components.errors import DataError

# Manifests in pipeline order, newest first: the first one found is what preprocess read.
MANIFEST_STAGES: tuple[str, ...] = ("augment", "validate", "ingest")
ARRAY_SPLITS: tuple[str, ...] = ("train", "val", "test")
MAX_DIGEST = 36  # MLflow's limit on a dataset digest


@dataclass
class Lineage:
    """The data identity of one run (see the module docstring for where each part comes from)."""

    dataset: str  # source name(s), e.g. "synthetic" or "fer2013"
    digest: str  # manifest digest (sha1), or of the preprocessed ids/labels without one
    source: str  # the file or folder the digest was computed from (project-relative)
    frame: pd.DataFrame  # the table behind the digest, for ``mlflow.data``
    dvc_md5: str | None = None
    stage_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    validation_summary: Path | None = None


def collect_lineage(task_dir: Path, params: dict[str, Any], root: Path) -> Lineage:
    """Gather the lineage of a run that trains on ``task_dir`` (``<artifacts>/preprocess/<t>``).

    Args:
        task_dir: the preprocessed task folder the run reads.
        params: the whole params mapping (``ingest.source`` names the dataset when no
            manifest says it).
        root: the project root (the run's source path is recorded relative to it).

    Returns:
        The :class:`Lineage`; parts whose files are absent are None or empty.

    Raises:
        DataError: a manifest or the ingest summary exists but cannot be read.
    """
    task_dir = Path(task_dir)
    artifacts = task_dir.parent.parent
    meta = _read_json(task_dir / "meta.json")
    manifest = find_manifest(artifacts)
    if manifest is not None:
        frame = read_manifest(manifest)
        digest, source = manifest_digest(frame), manifest
    else:
        frame = arrays_table(task_dir, meta.get("classes"))
        digest, source = table_digest(frame), task_dir
    stage_params = {}
    if isinstance(meta.get("params"), dict):
        stage_params["preprocess"] = meta["params"]
    augment = _read_json(artifacts / "augment" / "report.json")
    if isinstance(augment.get("params"), dict):
        stage_params["augment"] = augment["params"]
    summary = artifacts / "validate" / "summary.md"
    return Lineage(
        dataset=dataset_name(frame if manifest is not None else None, params, meta),
        digest=digest,
        source=project_relative(Path(source), Path(root)),
        frame=frame,
        dvc_md5=ingested_data_md5(artifacts / "ingest"),
        stage_params=stage_params,
        validation_summary=summary if summary.is_file() else None,
    )


def project_relative(path: Path, root: Path) -> str:
    """``path`` relative to the project ``root`` when inside it (so a run's params name the
    same file on every machine and in every checkout), else absolute."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(resolved)


def find_manifest(artifacts: Path) -> Path | None:
    """The newest stage manifest under ``artifacts`` (augment, then validate, then ingest)."""
    for stage in MANIFEST_STAGES:
        path = Path(artifacts) / stage / "manifest.parquet"
        if path.is_file():
            return path
    return None


def arrays_table(task_dir: Path, classes: list[str] | None) -> pd.DataFrame:
    """``id, split, label`` of the preprocessed samples: the lineage when no manifest exists."""
    parts = []
    for split in ARRAY_SPLITS:
        folder = Path(task_dir) / split
        if not (folder / "ids.npy").is_file() or not (folder / "y.npy").is_file():
            continue
        ids = np.load(folder / "ids.npy", allow_pickle=False)
        labels = np.load(folder / "y.npy", allow_pickle=False)
        names = [classes[i] if classes else str(i) for i in labels.tolist()]
        parts.append(pd.DataFrame({"id": ids.astype(str), "split": split, "label": names}))
    if not parts:
        raise DataError(
            f"{task_dir}: no ids.npy / y.npy in {list(ARRAY_SPLITS)} (re-run preprocess)"
        )
    return pd.concat(parts, ignore_index=True)


def table_digest(frame: pd.DataFrame) -> str:
    """sha1 over the rows of ``frame`` in order (same rows -> same digest)."""
    text = "\n".join("|".join(map(str, row)) for row in frame.itertuples(index=False))
    return hashlib.sha1(text.encode()).hexdigest()


def task_dataset(task_dir: Path, params: dict[str, Any]) -> str:
    """The dataset name of a preprocessed task folder: the one rule that picks the MLflow
    experiment (``<task>/<dataset>``) for tuning and training alike (see :func:`dataset_name`).

    Raises:
        DataError: a manifest exists but cannot be read.
    """
    task_dir = Path(task_dir)
    manifest = find_manifest(task_dir.parent.parent)
    frame = read_manifest(manifest) if manifest is not None else None
    return dataset_name(frame, params, _read_json(task_dir / "meta.json"))


def dataset_name(
    manifest: pd.DataFrame | None, params: dict[str, Any], meta: dict[str, Any]
) -> str:
    """Name the data: the manifest's ``source`` values, else ``ingest.source``, else unknown.

    The manifest wins because it records what was actually ingested; params may have been
    edited since.
    """
    if manifest is not None and "source" in manifest:
        sources = sorted({str(s) for s in manifest["source"].dropna().unique()})
        if sources:
            return "+".join(sources)
    ingest = params.get("ingest")
    if isinstance(ingest, dict) and ingest.get("source"):
        return str(ingest["source"])
    if meta.get("synthetic"):
        return "synthetic"
    return "unknown"


def _read_json(path: Path) -> dict[str, Any]:
    if not Path(path).is_file():
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read JSON ({exc})") from exc
    return data if isinstance(data, dict) else {}
