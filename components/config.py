"""Reading params.yaml sections into typed, validated settings.

Stages take their configuration from their own section of ``params.yaml`` (so DVC re-runs
exactly the stages whose params changed). :func:`build_config` turns a section into a
dataclass and rejects unknown or ill-typed keys with a message naming the key and the value.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from components.errors import ConfigError

T = TypeVar("T")


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Load the whole params file.

    Raises:
        ConfigError: the file is missing or is not a YAML mapping.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: params file not found")
    with path.open() as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def section(params: dict[str, Any], name: str) -> dict[str, Any]:
    """Return one section of the params, or raise naming the missing section."""
    if name not in params or not isinstance(params[name], dict):
        raise ConfigError(f"params.yaml: section {name!r} is missing or not a mapping")
    return params[name]


def build_config(cls: type[T], values: dict[str, Any], *, where: str) -> T:
    """Build dataclass ``cls`` from ``values``, checking names and simple types.

    Raises:
        ConfigError: an unknown key, or a value whose type does not fit the field.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; known keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if not _fits(value, hints[key]):
            raise ConfigError(f"{where}.{key}: value {value!r} does not fit type {hints[key]}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _fits(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple):
        return isinstance(value, list | tuple)
    if origin is dict:
        return isinstance(value, dict)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


# What the per-architecture stages read, section by section. ``train``/``tune`` are cut to
# the one architecture (see :func:`stage_view`); the others are taken whole.
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "tune": ("recipe", "ingest", "train", "tune"),
    "train": ("recipe", "ingest", "train", "preprocess", "serving"),
}
# Keys of ``train``/``tune`` that hold one entry per architecture.
PER_ARCH_KEYS: dict[str, tuple[str, ...]] = {
    "train": ("overrides", "model_kwargs"),
    "tune": ("enqueue", "spaces"),
}


def stage_view(params: dict[str, Any], stage: str, arch: str) -> dict[str, Any]:
    """The params one architecture's ``stage`` (``tune`` or ``train``) reads, as a params
    mapping of the same shape: ``train``/``tune`` keep only ``arch``'s entries of their
    per-architecture keys and drop the architecture list, and ``ingest`` keeps ``source``
    (the dataset name of the lineage).

    Written per architecture by the ``configure`` stage, this is what lets DVC re-run only
    the stages of the architecture whose settings changed: a stage that declared the whole
    ``train`` section would re-run whenever any architecture's override changed.
    Applying it to a view gives the same view.

    Raises:
        ConfigError: ``stage`` is not a per-architecture stage, or a per-architecture key
            is not a mapping.
    """
    if stage not in STAGE_SECTIONS:
        raise ConfigError(f"stage_view: {stage!r} is not one of {sorted(STAGE_SECTIONS)}")
    view: dict[str, Any] = {}
    for name in STAGE_SECTIONS[stage]:
        if name not in params:
            continue
        value = params[name]
        if name == "ingest" and isinstance(value, dict):
            value = {"source": value["source"]} if "source" in value else {}
        elif name in PER_ARCH_KEYS:
            value = _one_architecture(section(params, name), name, arch)
        view[name] = value
    return view


def _one_architecture(values: dict[str, Any], name: str, arch: str) -> dict[str, Any]:
    kept = {k: v for k, v in values.items() if k != "architectures"}
    for key in PER_ARCH_KEYS[name]:
        entries = kept.get(key)
        if entries is None:
            continue
        if not isinstance(entries, dict):
            raise ConfigError(f"{name}.{key}: expected a mapping architecture -> settings")
        kept[key] = {arch: entries[arch]} if arch in entries else {}
    return kept
