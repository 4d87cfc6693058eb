"""Tuner settings: the ``tune`` section of params.yaml as a typed dataclass.

Budgets are small by default (a few short trials per architecture) so the whole default
pipeline stays a CPU-minutes affair; raise ``n_trials`` / ``epochs`` / ``timeout`` for real
searches. ``spaces`` holds one search space per architecture (grammar in
:mod:`components.tuning.space`); ``enqueue`` lists known-good settings to try first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from components.config import build_config
from components.errors import ConfigError
from components.training.config import MONITORS
from components.tuning.space import ParamSpec, parse_space

PRUNERS: tuple[str, ...] = ("median", "hyperband", "none")
DIRECTIONS: dict[str, str] = {"max": "maximize", "min": "minimize"}


@dataclass
class TuneConfig:
    """Everything one study needs besides the data; defaults match the suggested params."""

    n_trials: int = 3  # trials this invocation adds (each worker adds its own)
    timeout: float | None = 120.0  # seconds per architecture; no new trial starts after it
    epochs: int = 3  # per trial (torch models; estimators' sub-models)
    # Share of the training rows each trial trains on (a seeded, fixed draw), so tuning on a
    # large set fits its budget; null or 1.0 = all rows. Validation stays whole.
    subsample: float | None = None
    metric: str = "val_uar"
    direction: str = "maximize"
    sampler_seed: int = 0
    startup_trials: int = 2  # TPE draws at random until this many trials have finished
    pruner: str = "median"
    pruner_startup_trials: int = 1  # median: finished trials before anything is pruned
    pruner_warmup_epochs: int = 1  # median: epochs a trial always runs; hyperband: min resource
    heartbeat_interval: int = 60  # RDB storages: seconds between a running trial's heartbeats
    # The recipe's own settings (the first enqueued trial) stay unless a trial beats them by
    # at least this much on ``metric``: short trials rank by noise. 0 = the plain best.
    min_gain: float = 0.0
    track: bool = True  # MLflow parent run per invocation, nested run per trial
    progress: bool = True
    enqueue: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    spaces: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.metric not in MONITORS:
            raise ConfigError(f"tune.metric: {self.metric!r} is not one of {sorted(MONITORS)}")
        natural = DIRECTIONS[MONITORS[self.metric]]
        if self.direction not in DIRECTIONS.values():
            raise ConfigError(f"tune.direction: {self.direction!r} is not maximize or minimize")
        if self.direction != natural:
            raise ConfigError(
                f"tune.direction: {self.metric} is better when larger/smaller; use {natural}"
            )
        if self.pruner not in PRUNERS:
            raise ConfigError(f"tune.pruner: {self.pruner!r} is not one of {list(PRUNERS)}")
        for key in ("n_trials", "epochs", "heartbeat_interval"):
            if getattr(self, key) < 1:
                raise ConfigError(f"tune.{key}: must be >= 1, got {getattr(self, key)}")
        for key in ("startup_trials", "pruner_startup_trials", "pruner_warmup_epochs"):
            if getattr(self, key) < 0:
                raise ConfigError(f"tune.{key}: must be >= 0, got {getattr(self, key)}")
        if self.subsample is not None and not 0.0 < self.subsample <= 1.0:
            raise ConfigError(f"tune.subsample: must be in (0, 1] or null, got {self.subsample}")
        if self.min_gain < 0:
            raise ConfigError(f"tune.min_gain: must be >= 0, got {self.min_gain}")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"tune.timeout: must be > 0 seconds or null, got {self.timeout}")

    def space(self, arch: str) -> dict[str, ParamSpec]:
        """The parsed search space of ``arch``.

        Raises:
            ConfigError: no space for ``arch``, or a malformed one (the message names the key).
        """
        if arch not in self.spaces:
            raise ConfigError(
                f"tune.spaces: no search space for {arch!r}; spaces exist for {sorted(self.spaces)}"
            )
        return parse_space(self.spaces[arch], f"tune.spaces.{arch}")

    def queued(self, arch: str) -> list[dict[str, Any]]:
        """Settings to try first for ``arch`` (each a ``{name: value}`` mapping).

        Raises:
            ConfigError: an entry is not a mapping or names a parameter outside the space.
        """
        entries = self.enqueue.get(arch) or []
        names = set(self.space(arch))
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise ConfigError(f"tune.enqueue.{arch}[{i}]: expected a mapping name -> value")
            unknown = sorted(set(entry) - names)
            if unknown:
                raise ConfigError(
                    f"tune.enqueue.{arch}[{i}]: {unknown[0]!r} is not in tune.spaces.{arch}"
                )
        return [dict(e) for e in entries]


def tune_config(values: dict[str, Any]) -> TuneConfig:
    """Build :class:`TuneConfig` from the ``tune`` section.

    Raises:
        ConfigError: an unknown or ill-typed key, or a value out of range.
    """
    cfg = build_config(TuneConfig, dict(values), where="tune")
    for arch, space in cfg.spaces.items():
        parse_space(space, f"tune.spaces.{arch}")  # fail on load, not at the first trial
    return cfg
