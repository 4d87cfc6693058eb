"""The augment params section: typos and impossible values fail with the key named."""

from __future__ import annotations

import pytest

from components.augment import KINDS, augment_config
from components.errors import ConfigError


def test_defaults_cover_every_kind_and_fill() -> None:
    cfg = augment_config({})
    assert set(cfg.kinds) == set(KINDS)
    assert cfg.area_bounds("mouth") == (0.1, 0.4)


def test_misspelled_kind_is_named() -> None:
    with pytest.raises(ConfigError, match="eyes_bnad"):
        augment_config({"kinds": {"eyes_bnad": 1, "mouth": 1}})


def test_misspelled_fill_is_named() -> None:
    with pytest.raises(ConfigError, match="augment.fills.*'nois'"):
        augment_config({"fills": {"nois": 1}})


def test_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError, match="'area'"):
        augment_config({"area": [0.1, 0.4]})


@pytest.mark.parametrize(
    "values, key",
    [
        ({"area_range": [0.4, 0.1]}, "area_range"),
        ({"area_range": [0.0, 0.3]}, "area_range"),
        ({"kinds": {"mouth": 0}}, "kinds"),
        ({"test_levels": [0.1, 0.101]}, "test_levels"),
        ({"test_levels": [0.9]}, "test_levels"),
        ({"kind_area_ranges": {"mouht": [0.1, 0.2]}}, "mouht"),
        ({"workers": -1}, "workers"),
    ],
)
def test_bad_values_raise_naming_the_key(values: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        augment_config(values)


def test_per_kind_range_overrides_the_global_one() -> None:
    cfg = augment_config({"kind_area_ranges": {"one_eye": [0.05, 0.15]}})
    assert cfg.area_bounds("one_eye") == (0.05, 0.15)
    assert cfg.area_bounds("eyes_band") == (0.1, 0.4)
