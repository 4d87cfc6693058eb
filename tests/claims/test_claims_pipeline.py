"""The claims pipeline end to end with real DVC on a tiny copy of the project.

A tiny rendered set, a spec with one data variant and one that re-runs preprocess only
(stretching off), two arms over two seeds and one claim: ``dvc repro claims/dvc.yaml``
must run the pipeline's own stages for each, write the report with a paired result, and a
second ``dvc repro`` must run nothing. On a machine that has only the git files and the raw
data (no DVC cache, no scratch), the data stages re-run to the same bytes and no arm re-runs:
the records in git are what lets a long set span sessions and machines.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from components.claims.record import cost_path, record_path
from tests.test_dvc_honesty import _dvc, _run, tiny_dvc_project

LOCK = "claims/dvc.lock"
TINY_DATA = {
    "validate.min_samples_per_class": 0, "augment.test_levels": [0.25],
    "preprocess.size": 24, "preprocess.clip_size": 16, "preprocess.clip_frames": 4,
}
SPEC = {
    "seeds": [0, 1],
    "budget": {"train.epochs": 1, "train.progress": False, "train.track": False},
    "variants": {
        "tiny": {"recipe": "demo", "overrides": TINY_DATA},
        "tiny_flat": {"recipe": "demo", "reuse": "tiny", "rerun": "preprocess",
                      "overrides": {"preprocess.stretch": False}},
    },
    "arms": {"stretched": {"variant": "tiny", "arch": "baseline_cnn"},
             "flat": {"variant": "tiny_flat", "arch": "baseline_cnn"}},
    "claims": [
        {"number": 5, "statement": "stretching helps", "data": "synthetic",
         "comparisons": [{"label": "stretch on vs off", "arm": "stretched", "baseline": "flat",
                          "metric": "test/accuracy"}]},
        {"number": 17, "statement": "UAR is the mean recall",
         "oracle": ["tests/training/test_metrics.py"]},
    ],
}


def _write_spec(root: Path) -> None:
    (root / "claims" / "params.yaml").write_text(yaml.safe_dump(SPEC, sort_keys=False))
    _run(root, sys.executable, "-m", "pipelines.claims", "dag")


@pytest.fixture(scope="module")
def claims_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with tiny_dvc_project(tmp_path_factory.mktemp("claims"), _write_spec,
                          "claims/dvc.yaml") as root:
        yield root


def test_each_arm_and_seed_runs_the_stages_on_its_own_params(claims_project: Path) -> None:
    arms = claims_project / "claims" / "artifacts" / "arms"
    for arm in ("stretched", "flat"):
        for seed in (0, 1):
            params = yaml.safe_load((arms / arm / f"s{seed}" / "params.yaml").read_text())
            assert params["train"]["seed"] == seed
            assert params["preprocess"]["stretch"] is (arm == "stretched")
            assert (arms / arm / f"s{seed}" / "train" / "baseline_cnn" / "model.pt").is_file()
            record = json.loads((claims_project / record_path(arm, seed)).read_text())
            assert "test_occ25/accuracy" in record["metrics"]
            assert record["arch"] == "baseline_cnn" and record["epochs_run"] == 1
            assert sum(sum(row.values()) for row in record["test_confusion"].values()) > 0
            cost = json.loads((claims_project / cost_path(arm, seed)).read_text())
            assert cost["cpu_seconds"] > 0
            assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", cost["commit"])
    # the variant that re-runs preprocess reuses the augmented manifest of the one it names
    data = claims_project / "claims" / "artifacts" / "data"
    assert (data / "tiny_flat" / "preprocess").is_dir()
    assert not (data / "tiny_flat" / "augment").exists()


def test_the_report_pairs_the_seeds_and_states_a_verdict(claims_project: Path) -> None:
    results = json.loads((claims_project / "claims" / "results.json").read_text())
    row = results["claims"][0]["comparisons"][0]
    assert row["seeds"] == [0, 1] and len(row["arm_values"]) == 2
    assert row["verdict"] in ("supported", "not supported", "inconclusive at this budget")
    report = (claims_project / "claims" / "report.md").read_text()
    assert "| 5 | synthetic | flat, stretched |" in report
    assert "`tests/training/test_metrics.py`" in report  # an oracle claim cites its test
    # the code each arm ran: one commit for both seeds here, named once
    assert re.search(r"\| stretched \| baseline_cnn \|.*\| `[0-9a-f]{7}(-dirty)?` \|", report)
    assert (claims_project / "claims" / "plots" / "differences.png").read_bytes()[:4] == (
        b"\x89PNG")


def test_a_second_repro_runs_nothing(claims_project: Path) -> None:
    output = _dvc(claims_project, "repro", "claims/dvc.yaml")
    assert "Running stage" not in output, output


def test_a_change_of_an_arms_inputs_stales_the_report_alone(claims_project: Path) -> None:
    """The report's code column reads each arm's inputs from claims/inputs.json (DVC takes no
    dvc.yaml as a dependency): a new dependency list written by `dag` re-runs the report."""
    path = claims_project / "claims" / "inputs.json"
    original = path.read_bytes()
    inputs = json.loads(original)
    assert set(inputs) == {"arm-stretched-s0", "arm-stretched-s1", "arm-flat-s0", "arm-flat-s1"}
    assert "pipelines/train.py" in inputs["arm-flat-s0"] and "data" in inputs["arm-flat-s0"]
    try:
        inputs["arm-flat-s0"].append("components/new_module.py")
        path.write_text(json.dumps(inputs, indent=1) + "\n")
        status = _dvc(claims_project, "status", "claims/dvc.yaml")
    finally:
        path.write_bytes(original)
    changed = re.findall(r"^claims/dvc\.yaml:([\w-]+):", status, flags=re.M)
    assert changed == ["report"], status


def test_an_edit_of_another_recipe_leaves_the_arms_up_to_date(claims_project: Path) -> None:
    """The stages depend on their own recipe's files: editing FER2013's keeps every demo
    stage; editing the demo's stales them."""
    recipes = claims_project / "conf" / "recipe"
    for name, stale in (("fer2013", False), ("demo", True)):
        path = recipes / f"{name}.yaml"
        original = path.read_bytes()
        try:
            path.write_bytes(original + b"# an edit\n")
            status = _dvc(claims_project, "status", "claims/dvc.yaml")
        finally:
            path.write_bytes(original)
        changed = re.findall(r"^claims/dvc\.yaml:([\w-]+):", status, flags=re.M)
        if stale:
            assert {"data-tiny", "arm-stretched-s0", "arm-flat-s1"} <= set(changed), status
            assert f"modified:           conf/recipe/{name}.yaml" in status
        else:
            assert changed == [], status


def test_a_machine_with_only_the_git_files_keeps_every_finished_arm(
        claims_project: Path) -> None:
    _run(claims_project, "git", "add", "-A")
    _run(claims_project, "git", "commit", "-q", "-m", "arms measured")
    shutil.rmtree(claims_project / "claims" / "artifacts")
    shutil.rmtree(claims_project / ".dvc" / "cache")
    output = _dvc(claims_project, "repro", "claims/dvc.yaml")
    assert "Running stage 'claims/dvc.yaml:data-tiny'" in output, output
    for stage in ("arm-stretched-s0", "arm-flat-s1", "report"):
        assert f"Stage 'claims/dvc.yaml:{stage}' didn't change, skipping" in output, output
    # the data stages gave the same bytes: only their timing reports differ in the lock
    assert _run(claims_project, "git", "status", "--porcelain").split() in ([], ["M", LOCK])
    committed = yaml.safe_load(_run(claims_project, "git", "show", f"HEAD:{LOCK}"))
    assert _without_timings(committed) == _without_timings(
        yaml.safe_load((claims_project / LOCK).read_text()))


def _without_timings(lock: dict) -> dict:
    return {name: [o for o in stage.get("outs", []) if "/timings" not in o["path"]]
            for name, stage in lock["stages"].items()}
