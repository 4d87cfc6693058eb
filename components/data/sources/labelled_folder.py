"""Flat image folders whose labels live in a table or in the file names.

Public FER sets are rarely ``root/<class>/`` trees: RAF-DB ships ``list_patition_label.txt``
(``train_00001.jpg 5``, codes 1-7, split by file-name prefix), AffectNet-style sets a csv with
an ``expression`` code, KDEF only file names (``AF01ANS.JPG``: the label is ``AN``). The
``ingest.labels`` section says where the labels are; every label then goes through the
project's alias table, after an optional code map. Rows the source cannot use (a table row
naming a missing file, a file without a row, an unknown or dropped label) are counted with
examples in the ingest summary; ``strict: true`` turns the first two kinds into errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from components.data.io import is_image_file
from components.data.labels import canonical_label
from components.data.sources.common import require_dir
from components.data.sources.image_folder import SPLIT_ALIASES, image_row
from components.errors import ConfigError, DataError

COLUMN_ROLES: tuple[str, ...] = ("file", "label", "split", "subject")
EXAMPLES = 5  # examples kept per counted problem


@dataclass
class LabelSource:
    """The ``ingest.labels`` section: where a flat folder's labels are.

    Attributes:
        table: a csv / tsv / txt of ``file,label[,split][,subject]`` rows (relative to the
            folder unless absolute); whitespace-separated for ``.txt``; a header is optional.
        columns: header names per role when they differ (``{label: expression}``).
        pattern: a regular expression searched in each file name, with the named group
            ``label`` and optionally ``subject`` and ``split`` (instead of a table).
        codes: label codes -> names (``{1: surprise, ...}``), applied before the aliases.
        drop: labels or codes to leave out, counted (``[8, 9, 10]``: AffectNet's non-faces).
        split_prefixes: file-name prefix -> split (``{train_: train, test_: test}``).
        strict: a row naming a missing file, or a file without a row, is an error.
    """

    table: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    pattern: str | None = None
    codes: dict[str, str] = field(default_factory=dict)
    drop: list[Any] = field(default_factory=list)
    split_prefixes: dict[str, str] = field(default_factory=dict)
    strict: bool = False

    def __post_init__(self) -> None:
        if (self.table is None) == (self.pattern is None):
            raise ConfigError("ingest.labels: set exactly one of table and pattern")
        unknown = sorted(set(self.columns) - set(COLUMN_ROLES))
        if unknown:
            raise ConfigError(f"ingest.labels.columns: unknown role {unknown[0]!r}; roles are "
                              f"{', '.join(COLUMN_ROLES)}")
        if self.pattern is not None:
            try:
                compiled = re.compile(self.pattern)
            except re.error as exc:
                raise ConfigError(f"ingest.labels.pattern: not a regular expression ({exc})"
                                  ) from exc
            if "label" not in compiled.groupindex:
                raise ConfigError("ingest.labels.pattern: needs a named group (?P<label>...)")
        self.codes = {str(k).strip(): str(v) for k, v in self.codes.items()}
        self.drop = [str(d).strip().lower() for d in self.drop]
        for prefix, split in self.split_prefixes.items():
            if str(split).lower() not in SPLIT_ALIASES:
                raise ConfigError(f"ingest.labels.split_prefixes.{prefix}: unknown split "
                                  f"{split!r}")


@dataclass
class Tally:
    """Rows left out, per reason, with a few examples each (the ingest summary)."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, example: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < EXAMPLES:
            kept.append(example)

    def as_dict(self) -> dict[str, Any]:
        return {reason: {"count": n, "examples": self.examples[reason]}
                for reason, n in sorted(self.counts.items())}


def scan_labelled_folder(root: str | Path, spec: LabelSource,
                         source: str = "image_folder") -> tuple[list[dict], dict[str, Any]]:
    """Manifest rows for a flat folder labelled by ``spec``, and what was left out.

    Raises:
        DataError: missing folder or table, a table without the needed columns, an image
            that does not decode, no usable row, or (``strict``) a missing / unlabelled file.
    """
    root = require_dir(root)
    tally = Tally()
    entries = (_table_entries(root, spec, tally) if spec.table is not None
               else _pattern_entries(root, spec, tally))
    rows = []
    for path, raw_label, split, subject in entries:
        label = _label(raw_label, spec, tally, path.name)
        if label is None:
            continue
        split = split or _prefix_split(path.name, spec)
        row = image_row(path, label, split, root, source)
        row["subject"] = subject
        rows.append(row)
    if not rows:
        raise DataError(f"{root}: no labelled image left (left out: {tally.as_dict()})")
    return rows, tally.as_dict()


def _table_entries(root: Path, spec: LabelSource, tally: Tally
                   ) -> list[tuple[Path, str, str | None, str | None]]:
    table = Path(spec.table)  # type: ignore[arg-type]
    table = table if table.is_absolute() else root / table
    if not table.is_file():
        raise DataError(f"{table}: labels table not found (ingest.labels.table)")
    frame = _read_table(table, root, spec)
    names = {role: spec.columns.get(role, role) for role in COLUMN_ROLES}
    for role in ("file", "label"):
        if names[role] not in frame.columns:
            raise DataError(f"{table}: no {names[role]!r} column (columns: "
                            f"{', '.join(map(str, frame.columns))}); set ingest.labels.columns")
    listed: set[str] = set()
    entries = []
    for record in frame.to_dict("records"):
        name = str(record[names["file"]]).strip()
        listed.add(name)
        path = root / name
        if not path.is_file():
            if spec.strict:
                raise DataError(f"{table}: row names {name}, which is not in {root}")
            tally.add("missing_file", name)
            continue
        split = _split_value(record.get(names["split"]), table)
        subject = record.get(names["subject"])
        subject = None if pd.isna(subject) else str(subject)
        entries.append((path, str(record[names["label"]]).strip(), split, subject))
    for path in sorted(p for p in root.rglob("*") if p.is_file() and is_image_file(p)):
        if path.relative_to(root).as_posix() not in listed:
            if spec.strict:
                raise DataError(f"{path}: image without a row in {table}")
            tally.add("no_label_row", path.relative_to(root).as_posix())
    return entries


def _read_table(table: Path, root: Path, spec: LabelSource) -> pd.DataFrame:
    """The table with named columns: its own header, or positional roles when the first
    row already names an image (RAF-DB's list has no header)."""
    sep = {".csv": ",", ".tsv": "\t"}.get(table.suffix.lower(), r"\s+")
    try:
        raw = pd.read_csv(table, sep=sep, header=None, dtype=str, engine="python")
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{table}: unreadable labels table ({exc})") from exc
    if raw.empty:
        raise DataError(f"{table}: empty labels table")
    if (root / str(raw.iloc[0, 0]).strip()).is_file():  # no header: file, label, split, subject
        raw.columns = list(COLUMN_ROLES[: raw.shape[1]]) + [
            f"column{i}" for i in range(len(COLUMN_ROLES), raw.shape[1])]
        return raw
    header = [str(c).strip() for c in raw.iloc[0]]
    return raw.iloc[1:].set_axis(header, axis=1).reset_index(drop=True)


def _pattern_entries(root: Path, spec: LabelSource, tally: Tally
                     ) -> list[tuple[Path, str, str | None, str | None]]:
    pattern = re.compile(spec.pattern)  # type: ignore[arg-type]
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and is_image_file(p)):
        found = pattern.search(path.name)
        if found is None:
            if spec.strict:
                raise DataError(f"{path}: file name does not match ingest.labels.pattern")
            tally.add("no_label_in_name", path.relative_to(root).as_posix())
            continue
        groups = found.groupdict()
        split = _split_value(groups.get("split"), path)
        entries.append((path, groups["label"], split, groups.get("subject")))
    return entries


def _label(raw: str, spec: LabelSource, tally: Tally, example: str) -> str | None:
    """The canonical label of a raw value (code map, then aliases); None when dropped or
    unknown (both counted)."""
    mapped = spec.codes.get(raw, raw)
    if raw.lower() in spec.drop or mapped.lower() in spec.drop:
        tally.add(f"dropped_label_{raw}", example)
        return None
    try:
        return canonical_label(mapped)
    except DataError:
        tally.add("unknown_label", f"{example} ({raw})")
        return None


def _split_value(value: Any, where: Path) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)) or str(value) == "nan":
        return None
    key = str(value).strip().lower()
    if key not in SPLIT_ALIASES:
        raise DataError(f"{where}: unknown split {value!r}; use train, val or test")
    return SPLIT_ALIASES[key]


def _prefix_split(name: str, spec: LabelSource) -> str | None:
    for prefix, split in spec.split_prefixes.items():
        if name.startswith(prefix):
            return SPLIT_ALIASES[str(split).lower()]
    return None
