"""The project's params.yaml ``tune`` section: valid, and a space for every architecture."""

from __future__ import annotations

import pytest

from components.config import load_params
from components.models import MODEL_INPUTS
from components.tuning import tune_config
from tests.tuning.conftest import REPO_ROOT


def test_project_tune_section_covers_every_architecture() -> None:
    params = load_params(REPO_ROOT / "params.yaml")
    if "tune" not in params:
        pytest.skip("params.yaml has no tune section yet")
    cfg = tune_config(params["tune"])
    for arch in MODEL_INPUTS:
        assert cfg.space(arch), arch
    assert cfg.n_trials * cfg.epochs <= 30  # the default pipeline stays CPU-minutes
