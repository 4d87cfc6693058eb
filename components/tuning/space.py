"""Search spaces from params.yaml: a small grammar turned into Optuna suggestions.

Each architecture's space is a mapping ``name -> spec`` under ``tune.spaces.<arch>``::

    lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    width: {type: float, low: 0.25, high: 1.0, step: 0.25}
    k: {type: int, low: 2, high: 4}
    batch_size: {type: categorical, choices: [16, 32]}

A ``null`` spec leaves the parameter out of the search: a recipe composes over
``conf/base.yaml``, where mappings merge key by key, so ``k: null`` is how a recipe drops a
parameter it inherited (the demo tunes the hierarchical model's similarity ``threshold``,
which replaces the count rule ``k``).

A name is a trainer setting (``lr``, ``batch_size``, ``ecstfl_lambda``, ...) or a model
keyword (``dropout``, ``width``, ``k``, ``C``, ...): the tuner hands the sampled values to
``resolve_config`` exactly as the train stage later reads ``chosen_params.json``, so one name
means the same thing in tuning and training.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import optuna

from components.errors import ConfigError

CategoricalValue = None | bool | int | float | str


class ParamSpec(Protocol):
    """One tunable parameter: how a trial draws it and a valid value to probe with."""

    def suggest(self, trial: optuna.Trial, name: str) -> Any: ...

    def example(self) -> Any: ...


@dataclass(frozen=True)
class FloatParam:
    """A float in ``[low, high]``, optionally log-uniform or on a ``step`` grid."""

    low: float
    high: float
    log: bool = False
    step: float | None = None

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        """Draw a value from the trial's sampler."""
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)

    def example(self) -> float:
        """The low end: a legal value for probing the settings before any trial runs."""
        return self.low


@dataclass(frozen=True)
class IntParam:
    """An integer in ``[low, high]`` (inclusive), optionally log-uniform or stepped."""

    low: int
    high: int
    log: bool = False
    step: int = 1

    def suggest(self, trial: optuna.Trial, name: str) -> int:
        """Draw a value from the trial's sampler."""
        return trial.suggest_int(name, self.low, self.high, log=self.log, step=self.step)

    def example(self) -> int:
        """The low end."""
        return self.low


@dataclass(frozen=True)
class CategoricalParam:
    """One of a fixed list of scalar choices."""

    choices: tuple[CategoricalValue, ...]

    def suggest(self, trial: optuna.Trial, name: str) -> CategoricalValue:
        """Draw a value from the trial's sampler."""
        return trial.suggest_categorical(name, self.choices)

    def example(self) -> CategoricalValue:
        """The first choice."""
        return self.choices[0]


# type name -> (required keys, optional keys)
_GRAMMAR: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "float": (frozenset({"low", "high"}), frozenset({"log", "step"})),
    "int": (frozenset({"low", "high"}), frozenset({"log", "step"})),
    "categorical": (frozenset({"choices"}), frozenset()),
}


def parse_space(values: Any, where: str) -> dict[str, ParamSpec]:
    """Turn one architecture's ``tune.spaces.<arch>`` mapping into parameter specs.

    Args:
        values: ``{name: {type: ..., ...}}`` as read from YAML.
        where: the params path for messages, e.g. ``tune.spaces.baseline_cnn``.

    Returns:
        ``{name: spec}`` in the order given, without the names whose spec is ``null``.

    Raises:
        ConfigError: the space is not a non-empty mapping, or a parameter has an unknown
            type, an unknown or missing key, or an invalid range; the message names the key.
    """
    if not isinstance(values, Mapping) or not values:
        raise ConfigError(f"{where}: expected a non-empty mapping of parameter -> spec")
    space = {str(name): parse_param(spec, f"{where}.{name}")
             for name, spec in values.items() if spec is not None}
    if not space:
        raise ConfigError(f"{where}: every parameter is null; nothing is left to tune")
    return space


def parse_param(spec: Any, where: str) -> ParamSpec:
    """Parse one ``{type: ..., ...}`` spec.

    Raises:
        ConfigError: see :func:`parse_space`.
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: expected a mapping such as {{type: float, low: 0, high: 1}}")
    kind = spec.get("type")
    if kind not in _GRAMMAR:
        raise ConfigError(f"{where}.type: {kind!r} is not one of {sorted(_GRAMMAR)}")
    required, optional = _GRAMMAR[kind]
    unknown = sorted(set(spec) - required - optional - {"type"})
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} for type {kind}; "
            f"allowed: {sorted(required | optional)}"
        )
    missing = sorted(required - set(spec))
    if missing:
        raise ConfigError(f"{where}: missing key {missing[0]!r} for type {kind}")
    if kind == "categorical":
        return _categorical(spec["choices"], where)
    return _numeric(kind, spec, where)


def _categorical(choices: Any, where: str) -> CategoricalParam:
    if not isinstance(choices, list | tuple) or not choices:
        raise ConfigError(f"{where}.choices: expected a non-empty list, got {choices!r}")
    for choice in choices:
        if choice is not None and not isinstance(choice, bool | int | float | str):
            raise ConfigError(
                f"{where}.choices: {choice!r} is not a scalar (null, bool, int, float or str)"
            )
    return CategoricalParam(tuple(choices))


def _numeric(kind: str, spec: Mapping[str, Any], where: str) -> FloatParam | IntParam:
    number = (int,) if kind == "int" else (int, float)
    for key in ("low", "high", "step"):
        value = spec.get(key)
        if key == "step" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, number):
            raise ConfigError(f"{where}.{key}: {value!r} is not an {kind}")
    low, high, step = spec["low"], spec["high"], spec.get("step")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log: expected true or false, got {log!r}")
    if low > high:
        raise ConfigError(f"{where}: low {low} is above high {high}")
    if log and low <= 0:
        raise ConfigError(f"{where}.low: a log scale needs low > 0, got {low}")
    if step is not None and step <= 0:
        raise ConfigError(f"{where}.step: must be > 0, got {step}")
    if log and step is not None and not (kind == "int" and step == 1):
        raise ConfigError(f"{where}: log and step cannot be combined")
    if kind == "int":
        return IntParam(int(low), int(high), log=log, step=int(step or 1))
    return FloatParam(float(low), float(high), log=log,
                      step=float(step) if step is not None else None)


def suggest_all(trial: optuna.Trial, space: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """Draw every parameter of ``space`` for ``trial``; returns ``{name: value}``."""
    return {name: spec.suggest(trial, name) for name, spec in space.items()}


def examples(space: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """One legal value per parameter (for checking the settings before the first trial)."""
    return {name: spec.example() for name, spec in space.items()}
