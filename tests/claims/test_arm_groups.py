"""Claim 13 reads the hierarchical arm's groups against the clean-test confusion counts,
which name the classes: the record must name the groups' classes the same way."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from components.claims.record import within_group_confusion
from components.models import load_trained
from pipelines import train as train_stage
from pipelines.claims.arm import write_groups
from tests.synthetic_task import make_synthetic_task


def test_groups_are_written_by_class_name(tmp_path: Path) -> None:
    make_synthetic_task(tmp_path / "preprocess", "image", size=32,
                        sizes={"train": 48, "val": 16, "test": 16})
    params = {"train": {"architectures": ["hierarchical"], "seed": 0, "epochs": 1,
                        "batch_size": 16, "progress": False, "track": False,
                        "overrides": {"hierarchical": {"folds": 2, "k": 2, "width": 0.25}}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    run = tmp_path / "train" / "hierarchical"
    assert train_stage.main(["--arch", "hierarchical", "--params", str(tmp_path / "params.yaml"),
                             "--data", str(tmp_path / "preprocess"), "--out", str(run),
                             "--tune-dir", str(tmp_path / "untuned")]) == 0
    write_groups(run, tmp_path / "groups.json")

    groups = json.loads((tmp_path / "groups.json").read_text())["groups"]
    spec, _ = load_trained(run)
    assert sorted(name for group in groups for name in group) == sorted(spec.classes)
    grouped = next(group for group in groups if len(group) > 1)
    # one test face of the group's first class taken for its second: all confusion is within
    confusion = {grouped[0]: {grouped[1]: 1}}
    assert within_group_confusion(confusion, groups) == 1.0
