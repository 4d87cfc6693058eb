"""The test-data digest, the policy section and the pure gate (no MLflow needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from components.errors import ConfigError, DataError
from components.tracking.store import run_record_path
from components.training import digest
from registry.candidates import read_candidate
from registry.gate import VersionScore, decide
from registry.policy import GatePolicy, load_policy
from tests.synthetic_task import make_synthetic_task


@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    return make_synthetic_task(tmp_path / "data", "rgbd", sizes={"train": 8, "val": 4,
                                                                 "test": 8})


def test_digest_is_stable_and_ignores_file_times(task_dir: Path, tmp_path: Path) -> None:
    first = digest.test_digest(task_dir)
    for path in (task_dir / "test").iterdir():
        os.utime(path, (1_000_000, 1_000_000))
    copy = make_synthetic_task(tmp_path / "again", "rgbd", sizes={"train": 8, "val": 4,
                                                                  "test": 8})
    assert digest.test_digest(task_dir) == first == digest.test_digest(copy)
    assert len(first) == 64
    assert digest.test_digest(task_dir, "test_occ25") != first


def test_digest_changes_with_labels_values_and_modalities(task_dir: Path) -> None:
    first = digest.test_digest(task_dir)
    labels = np.load(task_dir / "test" / "y.npy")
    np.save(task_dir / "test" / "y.npy", np.roll(labels, 1))
    relabelled = digest.test_digest(task_dir)
    assert relabelled != first
    (task_dir / "test" / "depth.npy").unlink()
    assert digest.test_digest(task_dir) not in {first, relabelled}


def test_digest_needs_ids_and_labels(task_dir: Path) -> None:
    (task_dir / "test" / "ids.npy").unlink()
    with pytest.raises(DataError, match="ids.npy: missing"):
        digest.test_digest(task_dir)
    with pytest.raises(DataError, match="split folder not found"):
        digest.test_digest(task_dir, "nope")


def _write_record(run_dir: Path, record: dict) -> None:
    path = run_record_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def test_candidate_digest_falls_back_to_the_data_folder(task_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "train" / "baseline_cnn"
    run_dir.mkdir(parents=True)
    record = {"run_id": "r1", "model_uri": "runs:/r1/model", "task": "rgbd",
              "arch": "baseline_cnn"}
    _write_record(run_dir, record)
    (run_dir / "metrics.json").write_text(json.dumps({"test_uar": 0.5, "best_epoch": 2}))
    (run_dir / "per_class.json").write_text(json.dumps(
        {"splits": {"test": {"per_class_recall": {"anger": 0.5}, "n": 8}}}))
    candidate = read_candidate(run_dir, task_dir.parent)
    assert candidate.test_digest == digest.test_digest(task_dir)
    assert candidate.metrics == {"test_uar": 0.5}
    with pytest.raises(DataError, match="no test_digest recorded"):
        read_candidate(run_dir, None)
    record["test_digest"] = "f" * 64
    record["serving_uri"] = "models:/m-serving"
    _write_record(run_dir, record)
    candidate = read_candidate(run_dir, None)
    assert candidate.test_digest == "f" * 64 and candidate.model_uri == "models:/m-serving"
    (run_dir / "metrics.json").write_text(json.dumps({"skipped": True, "reason": "no depth"}))
    assert read_candidate(run_dir, None) is None


def test_policy_defaults_and_rejects_bad_values() -> None:
    policy = load_policy({})
    assert policy == GatePolicy() and policy.model_name("rgbd") == "ferops-rgbd"
    assert load_policy({"registry": {"max_latency_ms": 15}}).max_latency_ms == 15
    with pytest.raises(ConfigError, match="unknown key 'floor'"):
        load_policy({"registry": {"floor": 0.2}})
    with pytest.raises(ConfigError, match="primary_metric 'val_uar' must be a test_"):
        load_policy({"registry": {"primary_metric": "val_uar"}})
    with pytest.raises(ConfigError, match="class_recall_floor"):
        load_policy({"registry": {"class_recall_floor": 1.5}})
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_policy({"registry": "strict"})


def score(version: str, uar: float, digest_: str = "d", *, low: float | None = None,
          retired: bool = False) -> VersionScore:
    recall = {"anger": uar, "fear": uar if low is None else low}
    return VersionScore(version, f"arch{version}", f"run{version}", digest_,
                        {"test_uar": uar}, recall, retired=retired)


def test_gate_delta_is_inclusive_and_ties_prefer_the_newer_version() -> None:
    policy = GatePolicy(min_delta=0.05)
    champion = score("1", 0.50)
    assert decide([champion, score("2", 0.55)], champion, policy).passed
    assert not decide([champion, score("2", 0.549)], champion, policy).passed
    chosen = decide([champion, score("2", 0.6), score("3", 0.6)], champion, policy)
    assert chosen.challenger.version == "3"


def test_gate_skips_retired_and_ineligible_versions_when_choosing() -> None:
    policy = GatePolicy(min_delta=0.0)
    champion = score("1", 0.5)
    versions = [champion, score("2", 0.9, retired=True), score("3", 0.8, "other"),
                score("4", 0.7, low=0.0), score("5", 0.6)]
    decision = decide(versions, champion, policy)
    assert decision.passed and decision.challenger.version == "5"
    only_champion = decide([champion, score("2", 0.9, retired=True)], champion, policy)
    assert only_champion.verdict == "unchanged" and only_champion.challenger is None


def test_gate_does_not_rejudge_versions_already_refused_against_the_champion() -> None:
    policy = GatePolicy(min_delta=0.05)
    champion = score("1", 0.5)
    judged = VersionScore("2", "arch2", "run2", "d", {"test_uar": 0.52},
                          {"anger": 0.5, "fear": 0.5}, refused_against="1")
    assert decide([champion, judged], champion, policy).verdict == "unchanged"
    # Against another champion the same version is judged again; a new version always is.
    assert decide([champion, judged], score("9", 0.4), policy).challenger.version == "2"
    fresh = decide([champion, judged, score("3", 0.6)], champion, policy)
    assert fresh.passed and fresh.challenger.version == "3"


def test_rejudge_judges_a_sticky_refusal_again_under_a_loosened_policy() -> None:
    champion = score("1", 0.5)
    judged = VersionScore("2", "arch2", "run2", "d", {"test_uar": 0.52},
                          {"anger": 0.5, "fear": 0.5}, refused_against="1")
    loosened = GatePolicy(min_delta=0.01)
    assert decide([champion, judged], champion, loosened).verdict == "unchanged"
    again = decide([champion, judged], champion, loosened, rejudge=True)
    assert again.passed and again.challenger.version == "2"


def test_a_class_absent_from_the_test_split_is_left_out_of_the_recall(tmp_path: Path) -> None:
    """Small test splits can miss a class: its recall is null, not a crash at registration."""
    from registry.candidates import read_test_recall

    path = tmp_path / "per_class.json"
    path.write_text(json.dumps({"splits": {"test": {
        "per_class_recall": {"anger": 0.5, "disgust": None, "fear": 0.25}, "n": 12}}}))
    recall, n = read_test_recall(path)
    assert recall == {"anger": 0.5, "fear": 0.25} and n == 12


def test_first_promotion_ignores_versions_scored_on_other_test_data() -> None:
    """No champion yet: a version scored on an easier (other) test set must not win."""
    easy = score("1", 0.95, "old-test-data")
    current = [score("2", 0.55, "new"), score("3", 0.60, "new")]
    decision = decide([easy, *current], None, GatePolicy())
    assert decision.passed and decision.challenger.version == "3"
    assert "v1" in decision.note and "other test data" in decision.note


def test_the_digest_compared_is_that_of_the_split_the_primary_metric_names() -> None:
    """Same clean test data but other occluded data: an occluded primary metric refuses."""
    recall = {"anger": 0.6, "fear": 0.6}

    def version(number: str, uar: float, occluded_digest: str) -> VersionScore:
        return VersionScore(number, "arch", f"run{number}", "clean",
                            {"test_uar": uar, "test_occ25_uar": uar}, recall,
                            digests={"test": "clean", "test_occ25": occluded_digest})

    champion, challenger = version("1", 0.5, "occ-a"), version("2", 0.7, "occ-b")
    occluded = GatePolicy(primary_metric="test_occ25_uar", class_recall_floor=0.0)
    refused = decide([champion, challenger], champion, occluded)
    assert not refused.passed and any("other test_occ25 data" in r for r in refused.reasons)
    assert challenger.digest_for("test_notta_uar") == "clean"  # no TTA: the same data
    assert decide([champion, challenger], champion,
                  GatePolicy(class_recall_floor=0.0)).passed  # clean data: the same


def test_replace_lets_the_newest_test_data_take_over_on_its_own_checks() -> None:
    """new_test_data: replace. Versions on the newest test data compete; the best replaces a
    champion scored on other data without a delta (no comparison across test sets), but
    still needs its own floor; a version without a digest never takes over."""
    replace = GatePolicy(new_test_data="replace", min_delta=0.05)
    champion = score("1", 0.95, "demo")
    versions = [champion, score("2", 0.90, "demo"), score("3", 0.60, "fer"),
                score("4", 0.66, "fer")]
    decision = decide(versions, champion, replace)
    assert decision.passed and decision.challenger.version == "4"
    assert {c.name for c in decision.checks} == {"metric", "digest", "floor"}
    assert "v2" in decision.note and "other test data" in decision.note
    starved = decide([champion, score("3", 0.7, "fer", low=0.0)], champion, replace)
    assert not starved.passed and any("below the floor" in r for r in starved.reasons)
    assert not decide([champion, score("3", 0.7, "")], champion, replace).passed
    # The default refuses, and says which setting would let the new data take over.
    refused = decide([champion, score("4", 0.66, "fer")], champion, GatePolicy())
    assert not refused.passed
    assert any("new_test_data: replace" in r for r in refused.reasons)


def test_replace_compares_as_usual_on_the_champions_own_test_data() -> None:
    replace = GatePolicy(new_test_data="replace", min_delta=0.05)
    champion = score("3", 0.60, "fer")
    versions = [score("1", 0.95, "demo"), champion, score("4", 0.62, "fer")]
    decision = decide(versions, champion, replace)
    assert not decision.passed and decision.challenger.version == "4"
    assert any("does not beat the champion's" in r for r in decision.reasons)
    with pytest.raises(ConfigError, match="new_test_data 'keep' must be one of refuse, replace"):
        load_policy({"registry": {"new_test_data": "keep"}})


def test_optional_minimums_and_recall_drop_refuse_with_the_reason() -> None:
    champion = VersionScore("1", "arch1", "run1", "d", {"test_uar": 0.5, "test_occ25_uar": 0.4},
                            {"anger": 0.5, "fear": 0.5})
    challenger = VersionScore("2", "arch2", "run2", "d",
                              {"test_uar": 0.6, "test_occ25_uar": 0.3},
                              {"anger": 0.9, "fear": 0.3})
    assert decide([champion, challenger], champion, GatePolicy()).passed  # both checks off
    occluded = decide([champion, challenger], champion,
                      GatePolicy(min_metrics={"test_occ25_uar": 0.35}))
    assert not occluded.passed
    assert any("test_occ25_uar 0.300 < 0.35" in r for r in occluded.reasons)
    missing = decide([champion, challenger], champion,
                     GatePolicy(min_metrics={"test_occ50_uar": 0.1}))
    assert any("has no test_occ50_uar" in r for r in missing.reasons)
    dropped = decide([champion, challenger], champion, GatePolicy(max_recall_drop=0.1))
    assert not dropped.passed and any("fear 0.500 -> 0.300" in r for r in dropped.reasons)
    assert decide([champion, challenger], champion, GatePolicy(max_recall_drop=0.25)).passed


def test_significance_guard_refuses_a_gain_of_one_face_and_passes_a_real_one() -> None:
    from registry.significance import Predictions

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 24)  # 96 faces
    champion_pred = np.where(rng.random(96) < 0.6, labels, (labels + 1) % 4)
    one_more = champion_pred.copy()
    one_more[np.flatnonzero(one_more != labels)[0]] = labels[np.flatnonzero(one_more != labels)[0]]
    much_better = np.where(rng.random(96) < 0.9, labels, (labels + 1) % 4)
    preds = {"1": champion_pred, "2": one_more, "3": much_better}

    def evidence(v: VersionScore, split: str) -> Predictions | None:
        assert split == "test"
        return Predictions(labels, preds[v.version]) if v.version in preds else None

    def version(number: str) -> VersionScore:
        uar = float((preds[number] == labels).mean())
        return score(number, uar)

    policy = GatePolicy(min_delta=0.0, significance=0.05, class_recall_floor=0.0)
    champion = version("1")
    tiny = decide([champion, version("2")], champion, policy, evidence=evidence)
    assert not tiny.passed and any("p = " in r for r in tiny.reasons)
    real = decide([champion, version("3")], champion, policy, evidence=evidence)
    assert real.passed
    blind = decide([champion, version("3")], champion, policy)  # no predictions logged
    assert not blind.passed and any("no per-sample test predictions" in r for r in blind.reasons)


def test_policy_rejects_minimums_on_other_than_test_metrics() -> None:
    with pytest.raises(ConfigError, match="min_metrics"):
        load_policy({"registry": {"min_metrics": {"val_uar": 0.5}}})
    with pytest.raises(ConfigError, match="max_recall_drop"):
        load_policy({"registry": {"max_recall_drop": 2}})


def test_a_champion_without_the_primary_metric_is_not_beaten_by_default() -> None:
    """After registry.primary_metric changes, a champion lacking it refuses challengers
    with the reason instead of letting any score through."""
    champion = VersionScore("1", "arch1", "run1", "d", {"test_accuracy": 0.9},
                            {"anger": 0.9, "fear": 0.9})
    weak = score("2", 0.10)
    decision = decide([champion, weak], champion, GatePolicy(min_delta=0.0))
    assert not decision.passed
    assert any("has no test_uar" in reason for reason in decision.reasons)


def test_refusal_text_names_the_failed_check_and_who_ranked_above() -> None:
    from registry.promote import refusal_text

    champion = score("1", 0.5)
    decision = decide([champion, score("2", 0.52), score("3", 0.51)], champion,
                      GatePolicy(min_delta=0.05))
    assert decision.verdict == "refuse" and decision.challenger.version == "2"
    own = refusal_text(decision, decision.challenger, "1")
    assert "does not beat the champion's 0.5000 by 0.05" in own
    lower = refusal_text(decision, score("3", 0.51), "1")
    assert lower.startswith("ranked below v2, which the gate refused against champion v1: ")
    assert own in lower
