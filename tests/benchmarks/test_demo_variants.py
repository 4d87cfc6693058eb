"""The demo-variants benchmark's plan and arithmetic: a bad variants file is refused naming
the entry, every run is the recipe plus its data variant's and its own overrides (untracked,
one architecture, the plan's seed), and ratios are taken against the named run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmarks.demo_variants import (
    DEFAULT_SPEC,
    _epochs,
    against_versus,
    compose,
    load_spec,
    markdown,
    network_epochs,
    run_overrides,
    target,
)
from components.errors import ConfigError
from components.models import available_models
from components.training.config import resolve_config


def _plan(tmp_path: Path, **changes: object) -> Path:
    raw = {"recipe": "demo", "seed": 3,
           "data": {"px32": {}, "px24": {"preprocess.size": 24}},
           "runs": {"ref": {"arch": "baseline_cnn", "data": "px32"},
                    "small": {"arch": "baseline_cnn", "data": "px24",
                              "overrides": {"train.epochs": 4}, "versus": "ref"}}}
    raw.update(changes)
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("plan", sorted(DEFAULT_SPEC.parent.glob("demo_*.yaml")),
                         ids=lambda path: path.stem)
def test_every_committed_plan_loads(plan: Path) -> None:
    """Each plan behind a results file (benchmarks/demo_*.yaml) still reads with today's
    architectures and recipe keys."""
    spec = load_spec(plan, available_models())
    assert spec.recipe == "demo" and spec.runs
    assert all(run.versus in (None, *spec.runs) for run in spec.runs.values())
    for run in spec.runs.values():
        params = yaml.safe_load(compose(spec, run_overrides(spec, run)))
        resolve_config(params["train"], run.arch)  # the train stage takes every trainer key


@pytest.mark.parametrize(("changes", "message"), [
    ({"data": {"px32": {"train.epochs": 3}}}, "sets only preprocess"),
    ({"runs": {"r": {"arch": "nonet", "data": "px32"}}}, "arch 'nonet'"),
    ({"runs": {"r": {"arch": "baseline_cnn", "data": "px99"}}}, "data 'px99'"),
    ({"runs": {"r": {"arch": "baseline_cnn", "data": "px32", "versus": "nobody"}}},
     "unknown run 'nobody'"),
    ({"runs": {"r": {"arch": "baseline_cnn", "data": "px32", "epochs": 3}}}, "unknown key"),
    ({"runs": {}}, "no runs"),
    ({"seed": "zero"}, "seed: expected an integer"),
])
def test_a_bad_plan_is_refused_naming_the_entry(tmp_path: Path, changes: dict,
                                                message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_spec(_plan(tmp_path, **changes), available_models())


def test_a_run_is_the_recipe_plus_its_data_and_own_overrides(tmp_path: Path) -> None:
    spec = load_spec(_plan(tmp_path), available_models())
    overrides = run_overrides(spec, spec.runs["small"])
    assert overrides["preprocess.size"] == 24 and overrides["train.epochs"] == 4
    assert overrides["train.seed"] == 3 and overrides["train.track"] is False
    params = yaml.safe_load(compose(spec, overrides))
    assert params["recipe"] == "demo" and params["preprocess"]["size"] == 24
    assert params["train"]["architectures"] == ["baseline_cnn"]
    assert params["train"]["epochs"] == 4 and params["train"]["lr"] == 0.002  # the recipe's


def test_ratios_and_differences_are_against_the_named_run() -> None:
    ref = {"versus": None, "train_seconds": 100.0, "overrides": {}, "data": "px32",
           "epochs_run": 20, "epochs_planned": 20, "scores": {"test_light_normal_accuracy": 0.82},
           **target("baseline_cnn", {"test_light_normal_accuracy": 0.82})}
    small = {"versus": "ref", "train_seconds": 40.0, "overrides": {"train.epochs": 8},
             "data": "px24", "epochs_run": None, "epochs_planned": 8,
             "scores": {"test_light_normal_accuracy": 0.77},
             **target("baseline_cnn", {"test_light_normal_accuracy": 0.77})}
    results = {"ref": ref, "small": small}
    against_versus(results)
    assert small["time_ratio"] == 0.4
    assert small["target_difference"] == pytest.approx(-0.05)
    assert ref["target_met"] and not small["target_met"]
    assert target("c3d_ecstfl", {"test_uar": 0.61})["target_met"]
    payload = {"machine": {"cpu": "cpu", "cpu_count": 2, "torch": "t", "torch_threads": 2},
               "commit": "abc", "recipe": "demo", "seed": 0, "runs": results,
               "data": {"px32": {"overrides": {}, "preprocess_seconds": 3.0}}}
    text = "\n".join(markdown("python benchmarks/demo_variants.py", payload))
    assert "0.40x of ref, -5.0 pts" in text and "| missed |" in text
    assert "| 20/20 |" in text and "| 8 per network |" in text


def test_a_plan_that_is_not_yaml_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text("runs: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_spec(path, available_models())


def test_an_estimators_epochs_are_read_per_network(tmp_path: Path) -> None:
    csv = tmp_path / "sub_models.csv"
    rows = [("planar fold 1", 20), ("planar fold 2", 18), ("first (groups)", 20),
            ("second (contempt + neutral)", 10)]
    csv.write_text("part,epoch,lr\n" + "".join(
        f'"{part}",{epoch},0.1\n' for part, last in rows for epoch in range(1, last + 1)))
    ran = network_epochs(csv)
    assert ran == {"planar": 20, "first": 20, "second": 10}
    assert _epochs({"epochs_planned": 10, "epochs_by_network": ran}) == \
        "planar 20, first 20, second 10"
    assert _epochs({"epochs_planned": 10, "epochs_by_network": {"a": 7, "b": 7}}) == \
        "7 per network"
    assert network_epochs(tmp_path / "absent.csv") == {}  # a plain network has no such file
    assert _epochs({"epochs_planned": 10, "epochs_run": 9}) == "9/10"
