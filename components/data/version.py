"""Which version of the raw data an ingest read: the md5 DVC recorded in ``data.dvc``.

The ingest stage writes this md5 into its summary (``artifacts/ingest/summary.json``), so a
training run's lineage reads it from a declared dependency of its stage. Before, every
training stage declared the whole raw ``data/`` folder only to read ``data.dvc``, and DVC
hashed tens of thousands of raw files once per architecture on every ``dvc repro``.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from components.errors import DataError

INGEST_SUMMARY = "summary.json"  # written by the ingest stage next to its manifest
MD5_KEY = "data_dvc_md5"  # the summary's key for the md5 of data.dvc


def dvc_data_md5(path: Path) -> str | None:
    """The md5 DVC recorded for the raw data (``outs[0].md5`` of ``data.dvc``), if tracked.

    Raises:
        DataError: the file exists but is not a DVC file.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text()) or {}
        outs = data.get("outs") or []
        md5 = outs[0].get("md5") if outs else None
    except (yaml.YAMLError, AttributeError, TypeError) as exc:
        raise DataError(f"{path}: not a readable DVC file ({exc})") from exc
    return str(md5) if md5 else None


def ingested_data_md5(ingest_dir: Path) -> str | None:
    """The raw data's md5 as the ingest stage recorded it in ``ingest_dir``; None without an
    ingest summary or when the data was not tracked by DVC then.

    Raises:
        DataError: the summary exists but is not JSON.
    """
    path = Path(ingest_dir) / INGEST_SUMMARY
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read the ingest summary ({exc})") from exc
    md5 = summary.get(MD5_KEY) if isinstance(summary, dict) else None
    return str(md5) if md5 else None
