"""The module graph the architecture promises (docs/architecture.md), checked on the source.

Tracking logs models and serving loads them; both depend on ``components/models`` and not on
each other. Nothing outside ``components/preprocess`` uses its private names: serving reuses
the preprocessing chain through public functions only, so training and serving cannot drift.
No stage, tracking, serving or export code asks which family a model belongs to: there is no
``ESTIMATORS`` list or ``is_torch`` flag outside ``components/models`` (every model is a
``Classifier`` and declares its needs).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """Every ``import`` / ``from ... import`` in a file, function-local ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
    return found


def _package_files(package: str) -> list[Path]:
    return sorted((ROOT / package.replace(".", "/")).rglob("*.py"))


@pytest.mark.parametrize(("package", "forbidden"), [
    ("components.tracking", "components.serving"),
    ("components.serving", "components.tracking"),
    ("components.models", "components.tracking"),
    ("components.models", "components.serving"),
    ("components.models", "components.training"),
])
def test_package_does_not_import(package: str, forbidden: str) -> None:
    offenders = [f"{path.relative_to(ROOT)} imports {module}"
                 for path in _package_files(package)
                 for module, _ in _imports(path)
                 if module == forbidden or module.startswith(forbidden + ".")]
    assert not offenders, "\n".join(offenders)


def _project_files(outside: str) -> list[Path]:
    """Every module of the project's code folders that is not under ``outside``."""
    return [path for folder in ("components", "pipelines", "registry", "benchmarks")
            for path in sorted((ROOT / folder).rglob("*.py")) if outside not in path.as_posix()]


def test_nothing_outside_preprocess_uses_its_private_names() -> None:
    offenders = []
    for path in _project_files("components/preprocess"):
        text = path.read_text()
        for module, names in _imports(path):
            if module.startswith("components.preprocess"):
                offenders += [f"{path.relative_to(ROOT)}: {module}.{n}"
                              for n in names if n.startswith("_")]
        for name in ("align", "process", "intensity", "frames", "outputs", "runner"):
            if f"{name}._" in text and f"components.preprocess import {name}" in text:
                offenders.append(f"{path.relative_to(ROOT)}: {name}._...")
    assert not offenders, "\n".join(offenders)


def test_no_model_family_branch_outside_components_models() -> None:
    family_words = ("ESTIMATORS", "is_torch", "ECSTFL_ARCHS", "is_estimator")
    offenders = [f"{path.relative_to(ROOT)}: {word}"
                 for path in _project_files("components/models")
                 for word in family_words if word in path.read_text()]
    assert not offenders, "\n".join(offenders)
