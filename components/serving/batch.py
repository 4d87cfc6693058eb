"""Many photos at once: folders and globs in, one table row per face out, bad files skipped.

``ferops predict --to results.csv photos/`` goes through here. Files are scored in chunks
(one forward pass per chunk); a chunk with an unreadable file is re-scored file by file, so
one corrupt photo costs a line in the summary, not the run. Rows carry the file, the face
box, the top label and every class probability, written as CSV or JSON lines.
"""

from __future__ import annotations

import glob
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from components.data.io import is_image_file
from components.errors import DataError, FeropsError
from components.serving.predictor import Predictor

CHUNK_FILES = 32
FORMATS: dict[str, str] = {".csv": "csv", ".jsonl": "jsonl"}
# the predictor names a request's row, and for the photo's own faults its column
_PHOTO_ROW_PREFIX = re.compile(r"^row 0(?: image)?: ")


@dataclass
class BatchResult:
    """The faces of every scored file, the files that failed and how fast it went."""

    faces: pd.DataFrame
    files: list[str]
    bad: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    seconds: float = 0.0

    @property
    def without_face(self) -> list[str]:
        """Files that were read but hold no detected face (they have no row in the table)."""
        skipped = {name for name, _ in self.bad}
        found = set(self.faces["file"]) if not self.faces.empty else set()
        return [f for f in self.files if f not in found and f not in skipped]

    def summary(self) -> str:
        """One paragraph for the end of a run."""
        rate = len(self.files) / self.seconds if self.seconds > 0 else float("nan")
        lines = [f"{len(self.files)} files, {len(self.faces)} faces, "
                 f"{len(self.without_face)} without a detected face, {len(self.bad)} "
                 f"unreadable or refused; {rate:.1f} files/s"]
        lines += [f"  skipped {name}: {reason}" for name, reason in self.bad]
        lines += [f"  no face: {name}" for name in self.without_face]
        return "\n".join(lines)


def expand_inputs(patterns: Sequence[str]) -> list[str]:
    """Files named by ``patterns``: a file as is, a folder's images (recursively, sorted),
    a glob's matches; duplicates dropped, order kept.

    Raises:
        DataError: a pattern names nothing.
    """
    found: list[str] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            matches = sorted(str(p) for p in path.rglob("*") if p.is_file() and is_image_file(p))
        elif path.is_file():
            matches = [str(path)]
        else:
            matches = sorted(m for m in glob.glob(pattern, recursive=True) if Path(m).is_file())
        if not matches:
            raise DataError(f"{pattern}: no file, folder of images or glob match")
        found += [m for m in matches if m not in found]
    return found


def predict_batch(predictor: Predictor, files: Sequence[str], *,
                  request: Callable[[Sequence[str]], pd.DataFrame],
                  chunk: int = CHUNK_FILES, progress: bool = True) -> BatchResult:
    """Score ``files`` in chunks; ``request`` turns file names into the predictor's request
    rows (the CLI's own reader). Unreadable files are skipped and listed."""
    started = time.perf_counter()
    tables: list[pd.DataFrame] = []
    bad: list[tuple[str, str]] = []
    with tqdm(total=len(files), desc="predict", unit="file", disable=not progress) as bar:
        for start in range(0, len(files), chunk):
            part = list(files[start:start + chunk])
            try:
                tables.append(_named(predictor.predict(request(part)), part))
            except FeropsError:  # find the bad file(s) of the chunk one by one
                for name in part:
                    try:
                        tables.append(_named(predictor.predict(request([name])), [name]))
                    except FeropsError as exc:
                        bad.append((name, file_reason(str(exc))))
            bar.update(len(part))
    faces = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return BatchResult(faces, list(files), bad, time.perf_counter() - started)


def file_reason(message: str) -> str:
    """A file scored alone: its request's error as the file's reason. The predictor numbers
    the rows of a request (``row 0 image: not an image``); with one file a request, that row
    and its photo are the file, so the prefix goes. A fault of another column of the row
    (``row 0 depth: ...``) keeps its words: the file alone does not say which input failed."""
    return _PHOTO_ROW_PREFIX.sub("", message, count=1)


def _named(table: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    table = table.copy()
    table.insert(0, "file", [names[int(i)] for i in table["input"]])
    return table.drop(columns=["input"])


def write_faces(result: BatchResult, out: Path) -> Path:
    """The face table as CSV or JSON lines (by ``out``'s suffix).

    Raises:
        DataError: an unknown suffix.
    """
    out = Path(out)
    kind = FORMATS.get(out.suffix.lower())
    if kind is None:
        raise DataError(f"{out}: write .csv or .jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        result.faces.to_csv(out, index=False)
    else:
        with out.open("w") as handle:
            for record in result.faces.to_dict("records"):
                handle.write(json.dumps(record, default=str) + "\n")
    return out
