"""Named recipes: composed by DVC's own Hydra composition into params every stage accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components import recipes
from components.augment.config import augment_config
from components.config import build_config
from components.data.sources import IngestConfig
from components.errors import ConfigError
from components.preprocess.config import preprocess_config
from components.serving.settings import serving_config
from components.training.config import resolve_config
from components.tuning.config import tune_config
from components.validation.config import validate_config
from registry.policy import load_policy

ROOT = Path(__file__).resolve().parents[1]


def test_every_recipe_is_listed() -> None:
    assert {"demo", "fer2013", "fer2013_cpu", "ferplus"} <= set(recipes.recipe_names(ROOT))


@pytest.mark.parametrize("name", ["demo", "fer2013", "fer2013_cpu", "ferplus"])
def test_recipe_composes_to_params_every_stage_accepts(name: str) -> None:
    params = recipes.compose(ROOT, name)
    assert params["recipe"] == name
    build_config(IngestConfig, params["ingest"], where="ingest")
    validate_config(params["validate"])
    augment_config(params["augment"])
    preprocess_config(params["preprocess"])
    serving_config(params["serving"])
    load_policy(params)
    tune = tune_config(params["tune"])
    for arch in params["train"]["architectures"]:
        cfg, _ = resolve_config(params["train"], arch)
        assert cfg.epochs >= 1
        tune.space(arch)


def test_fer2013_recipe_keeps_the_official_test_and_trains_to_a_budget() -> None:
    params = recipes.compose(ROOT, "fer2013")
    assert params["ingest"]["source"] == "fer2013"
    assert params["validate"]["keep_official_test"] is True
    assert params["train"]["budget_minutes"] == 60
    assert params["predict"]["model"] == "models:/ferops-image@champion"
    ferplus = recipes.compose(ROOT, "ferplus")
    assert ferplus["ingest"]["ferplus"].endswith("fer2013new.csv")
    assert ferplus["train"] == params["train"]  # same recipe, other labels


def test_fer2013_cpu_recipe_changes_only_augmentation_views_and_averaging() -> None:
    """The CPU recipe shares every data stage with `fer2013` (so DVC's run cache serves them)
    and trains the same net with lighter augmentation and a moving average of its weights,
    scored on ten test-time views."""
    full, cpu = recipes.compose(ROOT, "fer2013"), recipes.compose(ROOT, "fer2013_cpu")
    for section in ("ingest", "validate", "augment", "preprocess", "tune", "registry",
                    "predict", "serving"):
        assert cpu[section] == full[section], section
    changed = {key for key in full["train"] if cpu["train"][key] != full["train"][key]}
    assert changed == {"shift", "rotate", "scale", "erase_p", "tta_shift", "ema_decay"}
    assert full["train"]["ema_decay"] == 0.0 and 0.0 < cpu["train"]["ema_decay"] < 1.0
    assert cpu["train"]["erase_p"] == 0.0 and cpu["train"]["shift"] < full["train"]["shift"]
    assert cpu["train"]["tta_shift"] == 2 and cpu["train"]["tta_mirror"] is True
    assert cpu["train"]["overrides"]["baseline_cnn"]["width"] == 0.5


def test_committed_params_are_the_composed_demo() -> None:
    """`dvc repro` reads params.yaml as committed; it must be what `-S recipe=demo` gives."""
    committed = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert committed == recipes.compose(ROOT, "demo")


def test_overrides_apply_and_unknown_recipes_are_refused() -> None:
    params = recipes.compose(ROOT, "fer2013", ["train.epochs=3", "ingest.path=/x.csv"])
    assert params["train"]["epochs"] == 3 and params["ingest"]["path"] == "/x.csv"
    with pytest.raises(ConfigError, match="unknown; choose from"):
        recipes.compose(ROOT, "imagenet")
    with pytest.raises(ConfigError, match="recipe 'demo'"):
        recipes.compose(ROOT, "demo", ["train.no_such_key=1"])


def test_hydra_composition_is_enabled_for_dvc() -> None:
    config = (ROOT / ".dvc" / "config").read_text()
    assert "[hydra]" in config and "enabled = true" in config
