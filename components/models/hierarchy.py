"""Seed 002 (ITRI US 2019/0188458 A1): similarity of categories and their grouping.

All pure functions over a confusion matrix ``counts[p][q]`` = number of images of true
class p predicted as q (rows true, columns predicted). A *unit* is a set of class indices:
a single category or a merged group. Groups are scored by pooling their members' rows and
columns (methods.md 3.4), which reproduces FIG. 7D-7F exactly:

    TP_A = sum_{p in A, q in A} N[p][q],   FP_{A,B} = sum_{p in A, q in B} N[p][q]
    H(A, B) = ln((TP_A + FP_{A,B}) / TP_A),   S(A, B) = H(A, B) + H(B, A)

A larger S means more mutual confusion, hence more similar units.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from components.errors import ConfigError

Unit = tuple[int, ...]


def _as_unit(unit: int | Iterable[int]) -> Unit:
    if isinstance(unit, int | np.integer):
        return (int(unit),)
    return tuple(sorted(int(u) for u in unit))


def pooled_counts(counts: np.ndarray, a: int | Iterable[int], b: int | Iterable[int]) -> float:
    """Total of ``counts`` over true classes in ``a`` and predicted classes in ``b``."""
    rows, cols = list(_as_unit(a)), list(_as_unit(b))
    return float(np.asarray(counts, dtype=float)[np.ix_(rows, cols)].sum())


def cross_entropy_h(
    counts: np.ndarray,
    p_units: int | Iterable[int],
    q_units: int | Iterable[int],
    smoothing: float = 0.5,
) -> float:
    """H(p, q) = ln(1 + FP_{p,q} / TP_p) with counts pooled over the members of each unit.

    When TP_p = 0 the value would be infinite; then ``smoothing`` is added to both counts
    (methods.md 3.3, [DEFAULT]). Returns a float >= 0.
    """
    tp = pooled_counts(counts, p_units, p_units)
    fp = pooled_counts(counts, p_units, q_units)
    if tp == 0:
        tp, fp = tp + smoothing, fp + smoothing
    return math.log((tp + fp) / tp)


def similarity(
    counts: np.ndarray, a: int | Iterable[int], b: int | Iterable[int], smoothing: float = 0.5
) -> float:
    """S(a, b) = H(a, b) + H(b, a): symmetric, larger means more often confused."""
    return cross_entropy_h(counts, a, b, smoothing) + cross_entropy_h(counts, b, a, smoothing)


def similarity_matrix(
    counts: np.ndarray, units: Sequence[int | Iterable[int]], smoothing: float = 0.5
) -> np.ndarray:
    """S between every pair of ``units`` (diagonal NaN); returns a symmetric (U, U) array."""
    n = len(units)
    table = np.full((n, n), np.nan)
    for i in range(n):
        for j in range(i + 1, n):
            table[i, j] = table[j, i] = similarity(counts, units[i], units[j], smoothing)
    return table


@dataclass(frozen=True)
class MergeStep:
    """One merge of the grouping loop: which units joined, at what S, and the count after."""

    first: tuple[str, ...]
    second: tuple[str, ...]
    similarity: float
    units_after: int


@dataclass
class Grouping:
    """Result of :func:`group_categories`.

    ``units`` are the final units as label tuples (in the order of their lowest class
    index), ``unit_indices`` the same as class-index tuples, ``steps`` the merges in order.
    """

    units: list[tuple[str, ...]]
    unit_indices: list[Unit]
    steps: list[MergeStep] = field(default_factory=list)

    def unit_of(self) -> dict[int, int]:
        """Map every class index to the index of the unit that holds it."""
        return {c: u for u, members in enumerate(self.unit_indices) for c in members}


def group_categories(
    confusion: np.ndarray,
    labels: Sequence[str],
    k: int = 4,
    threshold: float | None = None,
    smoothing: float = 0.5,
) -> Grouping:
    """Merge the most similar units until fewer than ``k`` remain (FIG. 3, S305-S320).

    Count rule (``threshold`` None): merge, then stop once (#units) < k, so 7 classes with
    k = 4 end in 3 units after 4 merges. When the classes already number fewer than k no
    merge happens. Threshold rule: keep merging while the highest S >= ``threshold``.
    Ties go to the pair with the lowest unit indices; a merged unit takes the place of its
    lower-indexed part.

    Raises:
        ConfigError: the matrix is not square, does not match ``labels``, or k < 1.
    """
    counts = np.asarray(confusion, dtype=float)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] != len(labels):
        raise ConfigError(
            f"hierarchical grouping: confusion shape {counts.shape} does not match "
            f"{len(labels)} labels"
        )
    if threshold is None and k < 1:
        raise ConfigError(f"hierarchical.k: must be >= 1, got {k}")
    units: list[Unit] = [(i,) for i in range(len(labels))]
    steps: list[MergeStep] = []
    while len(units) > 1 and (threshold is not None or len(units) >= k):
        table = similarity_matrix(counts, units, smoothing)
        best_i, best_j = np.unravel_index(np.nanargmax(table), table.shape)  # row-major: ties
        i, j = sorted((int(best_i), int(best_j)))
        best = float(table[i, j])
        if threshold is not None and best < threshold:
            break
        first, second = units[i], units[j]
        units[i] = tuple(sorted(first + second))
        del units[j]
        steps.append(
            MergeStep(
                first=tuple(labels[c] for c in first),
                second=tuple(labels[c] for c in second),
                similarity=best,
                units_after=len(units),
            )
        )
    return Grouping(
        units=[tuple(labels[c] for c in unit) for unit in units],
        unit_indices=list(units),
        steps=steps,
    )
