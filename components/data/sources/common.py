"""Small helpers every folder-based source shares."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from components.errors import DataError


def require_dir(path: str | Path) -> Path:
    """Return ``path`` as a Path if it is an existing, non-empty folder.

    Raises:
        DataError: the path is missing, not a folder, or empty.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: path not found")
    if not path.is_dir():
        raise DataError(f"{path}: expected a folder")
    if not visible_children(path):
        raise DataError(f"{path}: folder is empty")
    return path


def visible_children(folder: Path) -> list[Path]:
    """Sorted entries of a folder, without hidden files (.DS_Store, .gitkeep, .ipynb...)."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def read_labels_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """Read a labels csv with string columns and check the required ones.

    Raises:
        DataError: missing file, unreadable csv, missing columns or no rows.
    """
    if not path.is_file():
        raise DataError(f"{path}: labels csv not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read csv ({exc})") from exc
    missing = [c for c in required if c not in frame]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}")
    if frame.empty:
        raise DataError(f"{path}: no rows")
    return frame


def optional_float(value: str) -> float | None:
    """Parse a csv cell as float; empty means unknown."""
    return float(value) if str(value).strip() != "" else None
