"""The claims spec, its generated DAG, the paired statistics and the report's arithmetic."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from components.claims.dag import INPUTS_FILE, recipe_inputs, render, render_inputs
from components.claims.record import (
    class_recall,
    confusion_counts,
    record_path,
    within_group_confusion,
)
from components.claims.report import measure, render_markdown
from components.claims.spec import (
    SPEC_FILE,
    arm_dir,
    arm_overrides,
    hydra_overrides,
    load_spec,
    stage_dirs,
)
from components.claims.stats import (
    INCONCLUSIVE,
    NOT_RUN,
    NOT_SUPPORTED,
    SUPPORTED,
    claim_verdict,
    paired,
    t_quantile,
)
from components.errors import ConfigError
from components.recipes import compose_text, recipe_names
from pipelines.claims.dag import raw_inputs

REPO_ROOT = Path(__file__).resolve().parents[2]


def _spec_file(tmp_path: Path, **changes: object) -> Path:
    raw = {
        "seeds": [0, 1, 2],
        "variants": {"base": {"recipe": "demo"},
                     "flat": {"recipe": "demo", "reuse": "base", "rerun": "preprocess",
                              "overrides": {"preprocess.stretch": False}}},
        "arms": {"a": {"variant": "base", "arch": "fusion_early"},
                 "b": {"variant": "flat", "arch": "fusion_early"}},
        "claims": [{"number": 5, "statement": "s", "data": "synthetic",
                    "comparisons": [{"label": "a vs b", "arm": "a", "baseline": "b",
                                     "metric": "test/accuracy"}]}],
    }
    raw.update(changes)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_committed_spec_loads_and_every_claim_of_section_7_has_a_row() -> None:
    spec = load_spec(REPO_ROOT / SPEC_FILE)
    assert sorted(c.number for c in spec.claims) == list(range(1, 20))
    assert len(spec.seeds) >= 3
    for claim in spec.claims:
        # claims 10-12 and 17 are arithmetic, checked by the oracle tests they cite
        assert claim.comparisons or all((REPO_ROOT / t).is_file() for t in claim.oracle)


def test_the_committed_dvc_yaml_is_what_the_spec_generates() -> None:
    spec = load_spec(REPO_ROOT / SPEC_FILE)
    expected = render(spec, raw_inputs(REPO_ROOT, spec), recipe_inputs(REPO_ROOT, spec))
    assert (REPO_ROOT / "claims" / "dvc.yaml").read_text() == expected, (
        "claims/dvc.yaml is stale: run `ferops claims dag`")
    inputs = render_inputs(yaml.safe_load(expected)["stages"])
    assert (REPO_ROOT / INPUTS_FILE).read_text() == inputs, (
        "claims/inputs.json is stale: run `ferops claims dag`")


@pytest.mark.parametrize("recipe", recipe_names(REPO_ROOT))
def test_a_recipe_composes_from_the_files_its_claims_stages_depend_on(
        tmp_path: Path, recipe: str) -> None:
    """The stages list a recipe's own files, not the whole conf folder (so an edit of another
    recipe leaves them up to date): those files alone must compose the same params."""
    spec = load_spec(_spec_file(tmp_path, variants={"v": {"recipe": recipe}}, arms={},
                                claims=[]))
    files = recipe_inputs(REPO_ROOT, spec)["v"]
    copy = tmp_path / "project"
    for name in files:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes((REPO_ROOT / name).read_bytes())
    assert f"conf/recipe/{recipe}.yaml" in files
    assert compose_text(copy, recipe) == compose_text(REPO_ROOT, recipe)


def test_an_arm_depends_on_its_own_recipe_and_not_on_the_others() -> None:
    stages = yaml.safe_load((REPO_ROOT / "claims" / "dvc.yaml").read_text())["stages"]
    spec = load_spec(REPO_ROOT / SPEC_FILE)
    for arm in ("fusion_early", "hierarchical"):
        deps = stages[f"arm-{arm}-s0"]["deps"]
        own = f"conf/recipe/{spec.variant_of(arm).recipe}.yaml"
        assert own in deps and "conf" not in deps
        assert [d for d in deps if d.startswith("conf/recipe/")] == [own]


def test_a_reusing_variant_shares_the_earlier_stages_and_owns_the_rest(tmp_path: Path) -> None:
    spec = load_spec(_spec_file(tmp_path))
    dirs = stage_dirs(spec, "flat")
    assert dirs["augment"] == Path("claims/artifacts/data/base/augment")
    assert dirs["preprocess"] == Path("claims/artifacts/data/flat/preprocess")
    overrides = arm_overrides(spec, "b", 2)
    assert overrides["preprocess.stretch"] is False and overrides["train.seed"] == 2
    assert overrides["train.architectures"] == ["fusion_early"]
    assert overrides["train.use_tuned"] is False and overrides["train.budget_minutes"] is None
    assert arm_dir("b", 2) == Path("claims/artifacts/arms/b/s2")


def test_overrides_are_hydra_add_or_replace_in_flow_style() -> None:
    assert hydra_overrides({"a.b": None, "c": [0.1, 0.25], "d": False, "e": "plain"}) == [
        "++a.b=null", "++c=[0.1, 0.25]", "++d=false", "++e=plain"]


@pytest.mark.parametrize(("changes", "message"), [
    ({"arms": {"a": {"variant": "nowhere", "arch": "fusion_early"}}}, "unknown variant"),
    ({"variants": {"base": {"recipe": "demo", "rerun": "preprocess"}}}, "needs 'reuse'"),
    ({"variants": {"x": {"recipe": "demo", "reuse": "y"}, "y": {"recipe": "demo", "reuse": "x"}},
      "arms": {}, "claims": [{"number": 1, "oracle": ["t.py"]}]}, "loop"),
    ({"seeds": []}, "non-empty"),
    ({"seeds": [0, "one"]}, "seeds: .* must be whole numbers"),
    ({"arms": {"a": {"variant": "base", "arch": "fusion_early", "seeds": ["one"]},
               "b": {"variant": "flat", "arch": "fusion_early"}}}, "arms.a.seeds: .* whole"),
    ({"arms": {"a": {"variant": "base", "arch": "fusion_early", "seeds": [5]},
               "b": {"variant": "flat", "arch": "fusion_early"}}}, "not among the spec's seeds"),
    ({"arms": {"a": {"variant": "base", "arch": "fusion_early", "seeds": [0, 0]},
               "b": {"variant": "flat", "arch": "fusion_early"}}}, "repeats a seed"),
    ({"claims": [{"number": 3, "comparisons": [{"label": "l", "arm": "a", "baseline": "zz",
                                                "metric": "test/uar"}]}]}, "unknown arm"),
    ({"claims": [{"number": 3, "comparisons": [{"label": "l", "arm": "a", "baseline": "b",
                                                "metric": "m", "better": "up"}]}]}, "better"),
])
def test_a_bad_spec_is_refused_naming_the_entry(tmp_path: Path, changes: dict,
                                                 message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_spec(_spec_file(tmp_path, **changes))


def test_paired_interval_uses_student_t_over_seeds() -> None:
    assert t_quantile(2) == pytest.approx(4.3027, abs=1e-4)
    result = paired([0.80, 0.82, 0.84], [0.70, 0.71, 0.75])
    diffs = [0.10, 0.11, 0.09]
    sd = math.sqrt(sum((d - 0.10) ** 2 for d in diffs) / 2)
    assert result.mean == pytest.approx(0.10) and result.sd == pytest.approx(sd)
    assert result.low == pytest.approx(0.10 - 4.3027 * sd / math.sqrt(3), abs=1e-4)
    assert result.verdict == SUPPORTED
    # lower is better: the same numbers say the opposite of the claim
    assert paired([0.80, 0.82, 0.84], [0.70, 0.71, 0.75], "lower").verdict == NOT_SUPPORTED
    assert paired([0.8, 0.7, 0.9], [0.75, 0.8, 0.8]).verdict == INCONCLUSIVE
    assert paired([0.9], [0.1]).verdict == INCONCLUSIVE  # one seed: no interval


def test_claim_verdict_needs_every_comparison() -> None:
    assert claim_verdict([SUPPORTED, SUPPORTED]) == SUPPORTED
    assert claim_verdict([SUPPORTED, INCONCLUSIVE]) == INCONCLUSIVE
    assert claim_verdict([SUPPORTED, NOT_SUPPORTED]) == NOT_SUPPORTED
    assert claim_verdict([SUPPORTED, NOT_RUN]) == INCONCLUSIVE
    assert claim_verdict([NOT_RUN]) == NOT_RUN


def test_recall_and_within_group_confusion_from_prediction_rows() -> None:
    rows = [{"actual": "anger", "predicted": "disgust"},   # within group
            {"actual": "anger", "predicted": "anger"},
            {"actual": "disgust", "predicted": "happiness"},  # across groups
            {"actual": "happiness", "predicted": "anger"},  # happiness is alone: not counted
            {"actual": "fear", "predicted": "anger"}]        # within group
    groups = [["anger", "disgust", "fear"], ["happiness"]]
    confusion = confusion_counts(rows)
    assert confusion["anger"] == {"anger": 1, "disgust": 1}
    assert class_recall(confusion, "anger") == 0.5
    assert class_recall(confusion, "surprise") is None
    assert within_group_confusion(confusion, groups) == pytest.approx(2 / 4)


def _write_record(root: Path, arm: str, seed: int, metrics: dict[str, float]) -> None:
    path = root / record_path(arm, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"arch": "fusion_early", "metrics": metrics,
                                "test_confusion": {}, "groups": None,
                                "epochs_planned": 2, "epochs_run": 2}))


def test_measure_pairs_seeds_and_lists_what_has_not_run(tmp_path: Path) -> None:
    spec = load_spec(_spec_file(tmp_path))
    accuracy = {("a", 0): 0.9, ("a", 1): 0.85, ("b", 0): 0.7, ("b", 1): 0.72}
    for (arm, seed), value in accuracy.items():
        _write_record(tmp_path, arm, seed, {"test/accuracy": value})
    results = measure(spec, tmp_path)
    row = results["claims"][0]["comparisons"][0]
    assert row["seeds"] == [0, 1]  # seed 2 has not run for either arm
    assert row["difference_mean"] == pytest.approx(((0.9 - 0.7) + (0.85 - 0.72)) / 2)
    assert results["arms"]["a"]["runs"]["0"]["epochs_run"] == 2
    results["commit"] = "abc1234"
    text = render_markdown(results, Path("plots/differences.png"))
    assert "| 5 | synthetic | a, b |" in text and "a vs b" in text
    assert "renderer" in text  # the synthetic caveat is stated


def test_a_claim_with_no_finished_arm_says_not_run(tmp_path: Path) -> None:
    spec = load_spec(_spec_file(tmp_path))
    results = measure(spec, tmp_path)
    assert results["claims"][0]["verdict"] == NOT_RUN
    results["commit"] = "abc1234"
    assert "not run yet" in render_markdown(results, Path("p.png"))


def test_an_arm_with_its_own_seeds_runs_only_those_and_pairs_on_them(tmp_path: Path) -> None:
    """An arm over 10 minutes runs one seed: the DAG has only that seed's stage, the report
    stage depends only on records that will exist, and the comparison pairs seed 0 alone."""
    spec = load_spec(_spec_file(tmp_path, arms={
        "a": {"variant": "base", "arch": "fusion_early", "seeds": [0]},
        "b": {"variant": "flat", "arch": "fusion_early"}}))
    assert spec.seeds_of("a") == (0,) and spec.seeds_of("b") == (0, 1, 2)
    stages = yaml.safe_load(render(spec, {}, {}))["stages"]
    assert [name for name in stages if name.startswith("arm-a")] == ["arm-a-s0"]
    assert len([name for name in stages if name.startswith("arm-b")]) == 3
    assert not any("/a/s1" in dep for dep in stages["report"]["deps"])
    for arm, seed in [("a", 0), ("b", 0), ("b", 1), ("b", 2)]:
        _write_record(tmp_path, arm, seed, {"test/accuracy": 0.5 + seed / 10})
    results = measure(spec, tmp_path)
    assert results["claims"][0]["comparisons"][0]["seeds"] == [0]
    assert list(results["arms"]["a"]["runs"]) == ["0"]
    results["commit"] = "abc1234"
    assert "except `a` with seed 0 (over 10 minutes a run)" in render_markdown(
        results, Path("p.png"))
