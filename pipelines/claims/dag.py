"""Claims step ``dag``: write ``claims/dvc.yaml`` from ``claims/params.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from components.claims.spec import ClaimsSpec


def write_dag(root: Path) -> Path:
    """Write ``claims/dvc.yaml`` from the spec, and beside it ``claims/inputs.json`` (each
    arm's inputs, for the report); returns the dvc.yaml path."""
    import yaml

    from components.claims.dag import (
        DVC_FILE,
        INPUTS_FILE,
        recipe_inputs,
        render,
        render_inputs,
    )
    from components.claims.spec import load_spec

    spec = load_spec(root / "claims" / "params.yaml")
    path = Path(root) / DVC_FILE
    text = render(spec, raw_inputs(root, spec), recipe_inputs(root, spec))
    path.write_text(text, encoding="utf-8")
    stages = yaml.safe_load(text)["stages"]
    (Path(root) / INPUTS_FILE).write_text(render_inputs(stages), encoding="utf-8")
    return path


def raw_inputs(root: Path, spec: ClaimsSpec) -> dict[str, list[str]]:
    """Variant -> the raw data inside the project its ingest reads (``data`` for the
    synthetic source); data outside the project (FER2013 by path) is named by the params."""
    import yaml

    from components.claims.spec import compose_variant

    found: dict[str, list[str]] = {}
    for name in spec.variants:
        ingest = yaml.safe_load(compose_variant(root, spec, name)).get("ingest") or {}
        path = Path(str(ingest.get("path", "")))
        inside = not path.is_absolute() and ".." not in path.parts and path.parts
        found[name] = [path.parts[0]] if inside else []
    return found
