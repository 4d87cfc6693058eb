"""Named recipes: params.yaml composed from ``conf/`` exactly as ``dvc exp run`` does it.

A recipe is a named set of params for a dataset and a budget (``conf/recipe/<name>.yaml``)
laid over ``conf/base.yaml``, which documents every knob with the demo's values. The project
uses DVC's Hydra composition (``hydra.enabled`` in ``.dvc/config``), so
``dvc exp run -S recipe=fer2013`` composes params.yaml before the run and ``dvc exp show``
lists the ``recipe`` of every experiment. This module calls DVC's own composition function,
so what ``ferops recipe`` writes or a benchmark reads is byte-for-byte what an experiment
gets.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from components.errors import ConfigError

CONF_DIR = "conf"
CONFIG_NAME = "config"
RECIPE_GROUP = "recipe"
PARAMS_HEADER = (
    "# Composed from conf/ (conf/base.yaml documents every knob; conf/recipe/ holds the\n"
    "# recipes) by DVC's Hydra composition: `dvc exp run -S recipe=NAME` rewrites this file.\n"
    "# Regenerate the committed default with `ferops recipe write demo`.\n"
)


def recipe_names(root: Path) -> list[str]:
    """The recipes ``conf/recipe/*.yaml`` defines, sorted."""
    return sorted(p.stem for p in (Path(root) / CONF_DIR / RECIPE_GROUP).glob("*.yaml"))


def compose_text(root: Path, recipe: str, overrides: Sequence[str] = ()) -> str:
    """params.yaml text for ``recipe`` plus Hydra ``overrides`` (``key=value``), as DVC
    writes it on ``dvc exp run -S recipe=<recipe> -S <override> ...``.

    Raises:
        ConfigError: an unknown recipe, or an override Hydra cannot apply.
    """
    from dvc.utils.hydra import compose_and_dump
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    root = Path(root).resolve()
    names = recipe_names(root)
    if recipe not in names:
        raise ConfigError(f"recipe {recipe!r}: unknown; choose from {names}")
    with tempfile.TemporaryDirectory(prefix="ferops-recipe-") as tmp:
        out = Path(tmp) / "params.yaml"
        try:
            compose_and_dump(out, str(root / CONF_DIR), None, CONFIG_NAME, "",
                             [f"{RECIPE_GROUP}={recipe}", *overrides])
        except (HydraException, OmegaConfBaseException) as exc:
            raise ConfigError(f"recipe {recipe!r} with {list(overrides)}: {exc}") from exc
        return out.read_text(encoding="utf-8")


def compose(root: Path, recipe: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The composed params of ``recipe`` as a mapping (see :func:`compose_text`)."""
    return yaml.safe_load(compose_text(root, recipe, overrides))


def write_params(root: Path, recipe: str, out: Path,
                 overrides: Sequence[str] = ()) -> Path:
    """Write the composed params of ``recipe`` to ``out`` with a header saying where they
    come from."""
    text = compose_text(root, recipe, overrides)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(PARAMS_HEADER + text, encoding="utf-8")
    return out
