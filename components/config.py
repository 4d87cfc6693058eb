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
