"""Fixtures shared by the trainer tests."""

from __future__ import annotations

import pytest

from components.training.data import SplitData
from tests.training.helpers import synthetic_color_splits


@pytest.fixture(scope="module")
def synthetic_splits(tmp_path_factory: pytest.TempPathFactory) -> tuple[SplitData, SplitData]:
    """Train and val splits of the synthetic 16 px task's colour images, one set per module."""
    return synthetic_color_splits(tmp_path_factory.mktemp("preprocess"))
