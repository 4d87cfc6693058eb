"""Trained runs that can be registered: the train stage's run folders, read and checked.

A run folder (``artifacts/train/<arch>``) holds ``metrics.json`` (test scores) and
``per_class.json`` (per-class recall); its run record beside it
(``artifacts/tracking/train/<arch>.json``) says where the run and its model live in MLflow.
Everything a registered version needs to be judged later is read here, once.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.errors import DataError
from components.tracking.store import run_record_path

log = logging.getLogger(__name__)

RECORD_KEYS: tuple[str, ...] = ("run_id", "model_uri", "task", "arch")


@dataclass(frozen=True)
class Candidate:
    """One trained run ready to become a model version."""

    run_dir: Path
    run_id: str
    arch: str
    task: str
    dataset: str
    model_uri: str                   # what gets registered (serving model when there is one)
    test_digest: str                 # the clean test split's
    metrics: dict[str, float]        # the finite test_* scores of metrics.json
    recall: dict[str, float]         # per-class recall on the clean test split
    n_test: int | None = None
    latency_ms: float | None = None
    record: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def split_digests(self) -> dict[str, str]:
        """``{split: digest}`` of every test split the run was scored on (older records
        know only the clean split's)."""
        return {**dict(self.record.get("test_digests") or {}), "test": self.test_digest}


def read_candidates(train_dir: Path, data_dir: Path | None = None,
                    architectures: Sequence[str] | None = None) -> list[Candidate]:
    """Every registrable run folder under ``train_dir``, sorted by folder name (only the
    folders named in ``architectures`` when given: other folders may be left over from
    runs with another architecture list).

    Folders without a run record (tracking was off) and runs the train stage skipped are
    left out with a log line.

    Raises:
        DataError: ``train_dir`` is missing, or a run folder's files are unreadable.
    """
    train_dir = Path(train_dir)
    if not train_dir.is_dir():
        raise DataError(f"{train_dir}: no run folders (run the train stage first)")
    found = []
    for run_dir in sorted(p for p in train_dir.iterdir() if p.is_dir()):
        if architectures is not None and run_dir.name not in architectures:
            continue
        candidate = read_candidate(run_dir, data_dir)
        if candidate is not None:
            found.append(candidate)
    return found


def read_candidate(run_dir: Path, data_dir: Path | None = None) -> Candidate | None:
    """The candidate of one run folder, or None when it has nothing to register.

    The test digest comes from the run record's ``test_digest`` (written at train time);
    older records fall back to fingerprinting ``<data_dir>/<task folder>`` now.

    Raises:
        DataError: a file is not valid JSON, a record key is missing, or the digest is
            neither recorded nor computable.
    """
    metrics = _read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else {}
    if metrics.get("skipped"):
        log.info("%s: skipped by the train stage (%s)", run_dir.name, metrics.get("reason", ""))
        return None
    record_path = run_record_path(run_dir)
    if not record_path.is_file():
        log.info("%s: no %s (tracking was off); not registered", run_dir.name, record_path)
        return None
    record = _read_json(record_path)
    if record.get("tracked") is False:
        log.info("%s: not tracked (%s); not registered", run_dir.name, record.get("reason"))
        return None
    missing = [key for key in RECORD_KEYS if not record.get(key)]
    if missing:
        raise DataError(f"{record_path}: missing key {missing[0]!r}")
    scores = scores_of(metrics)
    if not scores:
        raise DataError(f"{run_dir / 'metrics.json'}: no test_* scores to judge the model by")
    recall, n_test = read_test_recall(run_dir / "per_class.json")
    return Candidate(
        run_dir=run_dir,
        run_id=str(record["run_id"]),
        arch=str(record["arch"]),
        task=str(record["task"]),
        dataset=str(record.get("dataset") or "unknown"),
        model_uri=str(record.get("serving_uri") or record["model_uri"]),
        test_digest=_digest(record, run_dir, data_dir),
        metrics=scores,
        recall=recall,
        n_test=n_test,
        latency_ms=_latency(metrics, record),
        record=record,
    )


def scores_of(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite numeric ``test_*`` entries of a ``metrics.json`` mapping."""
    return {
        key: float(value) for key, value in metrics.items()
        if key.startswith("test_") and isinstance(value, int | float)
        and not isinstance(value, bool) and math.isfinite(float(value))
    }


def read_test_recall(path: Path) -> tuple[dict[str, float], int | None]:
    """Per-class recall on the clean test split and its sample count from ``per_class.json``.

    Raises:
        DataError: the file is missing, unreadable, or has no ``splits.test.per_class_recall``.
    """
    if not path.is_file():
        raise DataError(f"{path}: missing; the gate needs per-class test recall")
    report = _read_json(path)
    test = (report.get("splits") or {}).get("test") or {}
    recall = test.get("per_class_recall")
    if not isinstance(recall, dict) or not recall:
        raise DataError(f"{path}: no splits.test.per_class_recall")
    n = test.get("n")
    # A class with no test sample has no recall (null): it is absent from the test data, so
    # neither the floor nor the tags can speak of it.
    present = {str(k): float(v) for k, v in recall.items() if v is not None}
    absent = sorted(str(k) for k, v in recall.items() if v is None)
    if absent:
        log.info("%s: no test samples of %s; their recall is left out", path, ", ".join(absent))
    return present, int(n) if isinstance(n, int) else None


def _digest(record: dict[str, Any], run_dir: Path, data_dir: Path | None) -> str:
    if record.get("test_digest"):
        return str(record["test_digest"])
    if data_dir is None:
        raise DataError(f"{run_record_path(run_dir)}: no test_digest recorded; pass --data")
    # Imported here: components.training pulls in torch, which promote/rollback/status and
    # runs with a recorded digest never need.
    from components.training.data import task_folder
    from components.training.digest import test_digest

    return test_digest(Path(data_dir) / task_folder(str(record["task"])))


def _latency(metrics: dict[str, Any], record: dict[str, Any]) -> float | None:
    for source in (record, metrics):
        value = source.get("latency_ms")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data
