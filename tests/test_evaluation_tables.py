"""The comparison table and the occlusion curve read occlusion levels only, in level order."""

from __future__ import annotations

from components.evaluation import comparison_table, headline
from components.training.data import occlusion_levels

SPLITS = ["test_occluder_mouth", "test_occ40", "test", "test_occluder_eyes_band", "test_occ10"]


def _results(order: list[str]) -> dict:
    scores = {"test": 0.9, "test_occ10": 0.8, "test_occ40": 0.5, "test_occluder_mouth": 0.6,
              "test_occluder_eyes_band": 0.7}
    return {"net": {s: {"accuracy": scores[s], "uar": scores[s], "macro_f1": scores[s],
                        "confusion": [[8, 2], [1, 9]]} for s in order}}


def test_pooled_occluder_kinds_are_not_levels() -> None:
    assert occlusion_levels(SPLITS) == ["test_occ10", "test_occ40"]


def test_the_table_has_one_column_per_level_whatever_the_split_order() -> None:
    table = comparison_table(_results(SPLITS), {})
    header = table.splitlines()[2]
    assert header.count("occl.") == 2 and "acc @ 10% occl. | acc @ 40% occl." in header
    assert "| net | 0.9000 | 0.9000 | 0.9000 | 0.8000 | 0.5000 |" in table
    assert comparison_table(_results(list(reversed(SPLITS))), {}) == table


def test_the_headline_takes_the_heaviest_level() -> None:
    assert headline(_results(SPLITS)["net"])["occluded_40"] == 0.5
