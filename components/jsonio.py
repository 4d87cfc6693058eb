"""The one JSON writer of the project: atomic, strict and stable.

Every stage output and report goes through :func:`write_json`, so they share one set of
rules: the file is replaced atomically (a crash never leaves half a file for DVC to hash),
NaN and infinities become ``null`` (strict JSON that DVC and browsers parse), numpy scalars
and arrays become plain numbers and lists, and keys are sorted (stable diffs and hashes).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def to_plain(value: Any) -> Any:
    """``value`` with numpy types made plain and non-finite floats made None, recursively."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def dumps(data: Any) -> str:
    """The text :func:`write_json` writes."""
    return json.dumps(to_plain(data), indent=2, sort_keys=True, default=str) + "\n"


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(dumps(data))
    tmp.replace(path)
    return path
