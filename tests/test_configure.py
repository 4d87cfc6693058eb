"""The ``configure`` stage: each architecture's tune and train stages read a params file
cut to that architecture, and reading it gives the same settings as the whole params.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.config import load_params, stage_view
from components.errors import ConfigError
from components.training.config import resolve_config
from components.tuning.config import tune_config
from pipelines.configure import configure, view_path

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def params() -> dict:
    return load_params(REPO_ROOT / "params.yaml")


def test_a_view_holds_one_architecture_and_no_list(params: dict) -> None:
    view = stage_view(params, "tune", "c3d_ecstfl")
    assert set(view) == {"recipe", "ingest", "train", "tune"}
    assert "architectures" not in view["train"]
    assert set(view["train"]["overrides"]) == {"c3d_ecstfl"}
    assert set(view["tune"]["spaces"]) == {"c3d_ecstfl"}
    assert set(view["tune"]["enqueue"]) <= {"c3d_ecstfl"}
    assert view["ingest"] == {"source": params["ingest"]["source"]}
    train_view = stage_view(params, "train", "baseline_cnn")
    assert set(train_view) == {"recipe", "ingest", "train", "preprocess", "serving"}
    assert train_view["preprocess"] == params["preprocess"]


def test_a_view_of_a_view_is_the_same_view(params: dict) -> None:
    for stage in ("tune", "train"):
        view = stage_view(params, stage, "svm_fusion")
        assert stage_view(view, stage, "svm_fusion") == view


def test_the_written_files_give_the_settings_of_the_whole_params(params: dict,
                                                                  tmp_path: Path) -> None:
    written = configure(params, tmp_path)
    archs = params["train"]["architectures"]
    assert len(written) == 2 * len(archs)
    for arch in archs:
        train_file = load_params(view_path(tmp_path, "train", arch))
        tune_file = load_params(view_path(tmp_path, "tune", arch))
        whole = resolve_config(params["train"], arch)
        cfg, extra = resolve_config(train_file["train"], arch)
        assert (cfg.replace(architectures=[]), extra) == (whole[0].replace(architectures=[]),
                                                          whole[1])
        assert tune_config(tune_file["tune"]).space(arch) == tune_config(
            params["tune"]).space(arch)
        assert tune_config(tune_file["tune"]).queued(arch) == tune_config(
            params["tune"]).queued(arch)


def test_floats_survive_the_yaml_round_trip(params: dict, tmp_path: Path) -> None:
    """PyYAML reads ``1e-05`` (no dot) as a string; the files must keep numbers numbers."""
    configure(params, tmp_path)
    text = view_path(tmp_path, "train", "c3d_ecstfl").read_text()
    assert yaml.safe_load(text)["train"]["overrides"]["c3d_ecstfl"]["lr"] == pytest.approx(1e-4)


def test_a_repeated_or_missing_architecture_list_is_refused(params: dict,
                                                            tmp_path: Path) -> None:
    twice = {**params, "train": {**params["train"], "architectures": ["a", "a"]}}
    with pytest.raises(ConfigError, match="listed twice"):
        configure(twice, tmp_path)
    empty = {**params, "train": {**params["train"], "architectures": []}}
    with pytest.raises(ConfigError, match="non-empty list"):
        configure(empty, tmp_path)
