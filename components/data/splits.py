"""Assigning train/val/test splits when a dataset brings none.

Rules, in order: the dataset's own split wins; with subjects known the split is
subject-disjoint (no identity in two splits, which would leak); otherwise it is stratified by
label. Every choice is seeded so the same params give the same split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.errors import ConfigError

SPLIT_ORDER: tuple[str, ...] = ("train", "val", "test")


def check_fractions(fractions: dict[str, float]) -> dict[str, float]:
    """Validate split fractions: keys train/val/test, non-negative, summing to 1.

    Raises:
        ConfigError: unknown keys, negative values or a sum other than 1.
    """
    unknown = set(fractions) - set(SPLIT_ORDER)
    if unknown:
        raise ConfigError(f"ingest.split_fractions: unknown split {sorted(unknown)[0]!r}")
    values = {name: float(fractions.get(name, 0.0)) for name in SPLIT_ORDER}
    if any(v < 0 for v in values.values()) or abs(sum(values.values()) - 1.0) > 1e-6:
        raise ConfigError(f"ingest.split_fractions: {fractions} must be >= 0 and sum to 1")
    if values["train"] <= 0:
        raise ConfigError("ingest.split_fractions: train must be > 0")
    return values


def assign_splits(frame: pd.DataFrame, fractions: dict[str, float], seed: int) -> pd.Series:
    """Return a split per row: the given one where present, else subject-disjoint or stratified."""
    fractions = check_fractions(fractions)
    given = frame["split"] if "split" in frame else pd.Series(pd.NA, index=frame.index)
    if given.notna().all():
        return given.astype("string")
    subjects = frame["subject"] if "subject" in frame else pd.Series(pd.NA, index=frame.index)
    if subjects.notna().all():
        result = _subject_disjoint(subjects, fractions, seed)
    else:
        result = _stratified(frame["label"], fractions, seed)
    return given.astype("string").fillna(result).astype("string")


def _subject_disjoint(subjects: pd.Series, fractions: dict[str, float], seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    names = np.array(sorted(subjects.astype(str).unique()))
    rng.shuffle(names)
    bounds = _cut_points(len(names), fractions)
    by_subject: dict[str, str] = {}
    for split, (start, stop) in zip(SPLIT_ORDER, bounds, strict=True):
        for name in names[start:stop]:
            by_subject[str(name)] = split
    return subjects.astype(str).map(by_subject).astype("string")


def _stratified(labels: pd.Series, fractions: dict[str, float], seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    result = pd.Series("train", index=labels.index, dtype="string")
    for label in sorted(labels.astype(str).unique()):
        index = labels.index[labels.astype(str) == label].to_numpy().copy()
        rng.shuffle(index)
        for split, (start, stop) in zip(SPLIT_ORDER, _cut_points(len(index), fractions),
                                        strict=True):
            result.loc[index[start:stop]] = split
    return result


def _cut_points(n: int, fractions: dict[str, float]) -> list[tuple[int, int]]:
    """Split n items by fractions; each non-zero split gets at least one item when n allows."""
    counts = [int(round(n * fractions[s])) for s in SPLIT_ORDER]
    for i, split in enumerate(SPLIT_ORDER[1:], start=1):
        if fractions[split] > 0 and counts[i] == 0 and n >= 3:
            counts[i] = 1
    counts[0] = n - sum(counts[1:])
    edges = np.cumsum([0] + counts)
    return [(int(edges[i]), int(edges[i + 1])) for i in range(len(SPLIT_ORDER))]
