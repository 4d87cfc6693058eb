"""Exact duplicates within and across splits, label conflicts, and the exclusion rules."""

from __future__ import annotations

import json

import pytest

from components.validation import validate_manifest
from tests.validation.conftest import noise


@pytest.fixture
def duplicated(dataset):
    """A clean set plus four duplicate groups with known structure.

    within: two train copies, same label           -> within-split group
    leak:   train + val copies, same label         -> cross-split group (keep train)
    clash:  two train copies, anger vs happiness   -> conflicting group
    late:   val + two test copies, same label      -> cross-split (keep val) and within test
    """
    dataset.add_clean()
    for ident, split, label, seed in [
        ("within_a", "train", "anger", 1), ("within_b", "train", "anger", 1),
        ("leak_train", "train", "sadness", 2), ("leak_val", "val", "sadness", 2),
        ("clash_a", "train", "anger", 3), ("clash_h", "train", "happiness", 3),
        ("late_val", "val", "happiness", 4), ("late_test1", "test", "happiness", 4),
        ("late_test2", "test", "happiness", 4),
    ]:
        dataset.add(split, label, noise(seed), ident=ident)
    return dataset.manifest()


def _reasons(result) -> dict[str, str]:
    return dict(zip(result.excluded["id"], result.excluded["reason"], strict=True))


def test_groups_cross_split_and_conflicts_are_counted(duplicated, config, tmp_path):
    result = validate_manifest(duplicated, config(), tmp_path / "out", progress=False)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["n_duplicate_groups"] == 4
    assert metrics["n_duplicate_rows"] == 9
    assert metrics["n_cross_split_groups"] == 2
    assert metrics["n_conflicting_groups"] == 1
    assert metrics["n_within_split_duplicate_groups"] == 3
    groups = {tuple(sorted(g["ids"])): g for g in result.report["duplicates"]["groups"]}
    assert groups[("late_test1", "late_test2", "late_val")]["splits"] == ["val", "test"]
    assert groups[("clash_a", "clash_h")]["labels"] == ["anger", "happiness"]
    checks = {f.check: f.count for f in result.findings}
    assert checks["duplicates"] == 4 and checks["leakage"] == 2 and checks["label_conflict"] == 1


def test_default_policy_drops_leaked_copies_and_conflicts_only(duplicated, config, tmp_path):
    result = validate_manifest(duplicated, config(), tmp_path / "out", progress=False)
    assert _reasons(result) == {
        "leak_val": "leakage",
        "clash_a": "conflict",
        "clash_h": "conflict",
        "late_test1": "leakage",
        "late_test2": "leakage",
    }
    assert {"within_a", "within_b", "leak_train", "late_val"} <= set(result.manifest["id"])
    assert result.report["excluded"]["by_reason"] == {"conflict": 2, "leakage": 3}


def test_exclude_duplicates_keeps_one_copy_per_split(duplicated, config, tmp_path):
    cfg = config(exclude_duplicates=True, exclude_leakage=False, exclude_conflicts=False)
    result = validate_manifest(duplicated, cfg, tmp_path / "out", progress=False)
    assert _reasons(result) == {"within_b": "duplicate", "clash_h": "duplicate",
                                "late_test2": "duplicate"}


def test_all_switches_off_keeps_every_row(duplicated, config, tmp_path):
    cfg = config(exclude_leakage=False, exclude_conflicts=False, exclude_blank=False)
    result = validate_manifest(duplicated, cfg, tmp_path / "out", progress=False)
    assert result.excluded.empty and len(result.manifest) == len(duplicated)
    assert result.report["duplicates"]["n_groups"] == 4


def test_all_switches_on(duplicated, config, tmp_path):
    cfg = config(exclude_duplicates=True)
    result = validate_manifest(duplicated, cfg, tmp_path / "out", progress=False)
    assert _reasons(result) == {
        "within_b": "duplicate",
        "leak_val": "leakage",
        "clash_a": "conflict",
        "clash_h": "conflict",
        "late_test1": "leakage",
        "late_test2": "leakage",
    }
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "4 groups of pixel-identical samples" in summary and "duplicate: 1" in summary
