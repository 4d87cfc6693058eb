"""Exact duplicates by content hash, split leakage, label conflicts, and the exclusion policy.

A duplicate group is every decoded row sharing one ``content_hash``. A group that spans splits
leaks evaluation images into training; a group whose copies carry different labels is label
noise. What to drop is a params decision (:func:`exclusion_reasons`); finding is not.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from components.data.manifest import SPLITS
from components.validation.config import ValidateConfig

# Order in which a cross-split group keeps its copy: training data wins, evaluation copies go.
SPLIT_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SPLITS)}
REASONS: tuple[str, ...] = ("blank", "conflict", "leakage", "duplicate")


@dataclass(frozen=True)
class DuplicateSummary:
    """Duplicate groups (one row each) and their counts.

    ``groups`` columns: ``content_hash, n_rows, n_splits, n_labels, splits, labels, ids,
    crosses_splits, conflicting``.
    """

    groups: pd.DataFrame

    @property
    def n_groups(self) -> int:
        return len(self.groups)

    @property
    def n_rows(self) -> int:
        return int(self.groups["n_rows"].sum()) if len(self.groups) else 0

    @property
    def n_redundant_rows(self) -> int:
        """Rows beyond the first of each group: what dropping all copies would remove."""
        return self.n_rows - self.n_groups

    @property
    def n_cross_split_groups(self) -> int:
        return int(self.groups["crosses_splits"].sum()) if len(self.groups) else 0

    @property
    def n_conflicting_groups(self) -> int:
        return int(self.groups["conflicting"].sum()) if len(self.groups) else 0

    @property
    def n_within_split_groups(self) -> int:
        """Groups with at least two copies inside one split."""
        if not len(self.groups):
            return 0
        return int((self.groups["n_rows"] > self.groups["n_splits"]).sum())


def find_duplicates(facts: pd.DataFrame) -> DuplicateSummary:
    """Group decoded rows by content hash and keep the groups with more than one row.

    Returns:
        A :class:`DuplicateSummary`, groups ordered by size (largest first), then hash.
    """
    decoded = facts[facts["decodes_ok"].fillna(False) & facts["content_hash"].notna()]
    sizes = decoded.groupby("content_hash", sort=False)["id"].transform("size")
    rows = decoded[sizes > 1]
    if rows.empty:
        columns = ["content_hash", "n_rows", "n_splits", "n_labels", "splits", "labels", "ids",
                   "crosses_splits", "conflicting"]
        return DuplicateSummary(pd.DataFrame(columns=columns))
    grouped = rows.groupby("content_hash", sort=True)
    groups = pd.DataFrame(
        {
            "n_rows": grouped.size(),
            "n_splits": grouped["split"].nunique(),
            "n_labels": grouped["label"].nunique(),
            "splits": grouped["split"].agg(lambda s: sorted(set(s), key=SPLIT_RANK.get)),
            "labels": grouped["label"].agg(lambda s: sorted(set(s))),
            "ids": grouped["id"].agg(list),
        }
    ).reset_index()
    groups["crosses_splits"] = groups["n_splits"] > 1
    groups["conflicting"] = groups["n_labels"] > 1
    groups = groups.sort_values(["n_rows", "content_hash"], ascending=[False, True])
    return DuplicateSummary(groups.reset_index(drop=True))


def blank_mask(facts: pd.DataFrame, threshold: float) -> pd.Series:
    """Decoded rows whose pixel standard deviation is below ``threshold`` (blank/near-constant)."""
    return (facts["decodes_ok"].fillna(False) & (facts["pixel_std"] < threshold)).fillna(False)


def exclusion_reasons(
    facts: pd.DataFrame, summary: DuplicateSummary, cfg: ValidateConfig
) -> pd.Series:
    """Why each row leaves the validated manifest (null: it stays), by the params switches.

    Rules, first match wins: ``blank`` (exclude_blank); ``conflict``: every copy of a group
    with more than one label (exclude_conflicts); ``leakage``: copies of a cross-split group
    outside its earliest split in train < val < test order, so evaluation copies of training
    images go (exclude_leakage); ``duplicate``: all but the first remaining copy of a group
    within one split (exclude_duplicates). Rows that did not decode are never excluded here:
    they are errors that fail the stage.
    """
    reasons = pd.Series(pd.NA, index=facts.index, dtype="string")
    if cfg.exclude_blank:
        reasons[blank_mask(facts, cfg.blank_std_threshold)] = "blank"
    groups = summary.groups
    in_group = facts["content_hash"].isin(set(groups["content_hash"])).fillna(False)
    if cfg.exclude_conflicts and len(groups):
        conflicting = set(groups.loc[groups["conflicting"], "content_hash"])
        hit = facts["content_hash"].isin(conflicting).fillna(False) & reasons.isna()
        reasons[hit] = "conflict"
    if cfg.exclude_leakage and len(groups):
        rank = facts["split"].map(SPLIT_RANK).astype("Int64")
        first = rank[in_group].groupby(facts.loc[in_group, "content_hash"]).transform("min")
        later = pd.Series(False, index=facts.index)
        later[first.index] = (rank[first.index] > first).fillna(False).to_numpy(dtype=bool)
        reasons[later & reasons.isna()] = "leakage"
    if cfg.exclude_duplicates and len(groups):
        kept = facts[in_group & reasons.isna()]
        extra = kept.duplicated(subset=["content_hash", "split"], keep="first")
        reasons[extra[extra].index] = "duplicate"
    return reasons
