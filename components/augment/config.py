"""The ``augment`` section of params.yaml as a typed, checked dataclass (seed 003).

Kinds and fills are named in params, so a typo must fail loudly: a misspelled kind would
otherwise silently drop an occluder family from the training mix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from components.config import build_config
from components.errors import ConfigError

# Occluders whose geometry albumentations draws (random rectangles / grids on the face crop).
ALBU_KINDS: tuple[str, ...] = ("coarse_dropout", "erasing", "grid_dropout")
# Occluders placed on a facial part found from the eye positions.
REGION_KINDS: tuple[str, ...] = ("eyes_band", "lower_face", "one_eye", "mouth")
KINDS: tuple[str, ...] = ALBU_KINDS + REGION_KINDS
FILLS: tuple[str, ...] = ("black", "noise", "color", "texture")

# Beyond this a face is mostly hidden and grid cells can no longer reach the area.
MAX_AREA: float = 0.7


def _default_kinds() -> dict[str, float]:
    return dict.fromkeys(KINDS, 1.0)


def _default_fills() -> dict[str, float]:
    return dict.fromkeys(FILLS, 1.0)


@dataclass(frozen=True)
class AugmentConfig:
    """Random-occlusion settings.

    ``area_range`` is the covered fraction of the face box, drawn uniformly per sample;
    ``kind_area_ranges`` overrides it per kind. ``test_levels`` are the exact face fractions of
    the evaluation-only occluded test set. ``depth_offset_mm`` is how much nearer than the face
    median an occluder sits in the depth map. ``workers`` 0 means one process per CPU core.
    """

    seed: int = 3
    area_range: list[float] = field(default_factory=lambda: [0.1, 0.4])
    kinds: dict[str, float] = field(default_factory=_default_kinds)
    fills: dict[str, float] = field(default_factory=_default_fills)
    test_levels: list[float] = field(default_factory=lambda: [0.1, 0.25, 0.4])
    kind_area_ranges: dict[str, list[float]] = field(default_factory=dict)
    depth_offset_mm: list[float] = field(default_factory=lambda: [30.0, 60.0])
    workers: int = 0
    # Seed 003's 1:1 mix: every train/val row gets an occluded twin. False trains on clean
    # images only (the ablation of claim 14); the occluded test set is built either way.
    twins: bool = True

    def __post_init__(self) -> None:
        _check_range(self.area_range, "augment.area_range")
        _check_weights(self.kinds, KINDS, "augment.kinds", "occluder kind")
        _check_weights(self.fills, FILLS, "augment.fills", "fill")
        for kind, bounds in self.kind_area_ranges.items():
            if kind not in KINDS:
                raise ConfigError(
                    f"augment.kind_area_ranges: unknown occluder kind {kind!r}; known: {KINDS}"
                )
            _check_range(bounds, f"augment.kind_area_ranges.{kind}")
        for level in self.test_levels:
            if isinstance(level, bool) or not isinstance(level, int | float):
                raise ConfigError(f"augment.test_levels: {level!r} is not a number")
            if not 0 < level <= MAX_AREA:
                raise ConfigError(f"augment.test_levels: {level} must be in (0, {MAX_AREA}]")
        pcts = [level_tag(level) for level in self.test_levels]
        if len(set(pcts)) != len(pcts):
            raise ConfigError(
                f"augment.test_levels: {self.test_levels} name the same percentage twice"
            )
        offsets = list(self.depth_offset_mm)
        if len(offsets) != 2 or not 0 <= offsets[0] <= offsets[1]:
            raise ConfigError(
                f"augment.depth_offset_mm: {self.depth_offset_mm!r} must be [min, max] with "
                "0 <= min <= max"
            )
        if not isinstance(self.twins, bool):
            raise ConfigError(f"augment.twins: {self.twins!r} must be true or false")
        if self.workers < 0:
            raise ConfigError(f"augment.workers: {self.workers} must be >= 0 (0 = all cores)")

    def area_bounds(self, kind: str) -> tuple[float, float]:
        """The configured covered-face fraction range of one kind."""
        low, high = self.kind_area_ranges.get(kind, self.area_range)
        return float(low), float(high)


def level_tag(level: float) -> int:
    """The integer percentage naming an occlusion level (0.25 -> 25), used in ids and arrays."""
    return int(round(float(level) * 100))


def _check_range(bounds: Any, where: str) -> None:
    values = list(bounds) if isinstance(bounds, list | tuple) else []
    ok = len(values) == 2 and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    )
    if not ok or not 0 < values[0] <= values[1] <= MAX_AREA:
        raise ConfigError(
            f"{where}: {bounds!r} must be [low, high] with 0 < low <= high <= {MAX_AREA}"
        )


def _check_weights(weights: dict[str, Any], known: tuple[str, ...], where: str, what: str) -> None:
    for name, weight in weights.items():
        if name not in known:
            raise ConfigError(f"{where}: unknown {what} {name!r}; known: {', '.join(known)}")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise ConfigError(f"{where}.{name}: weight {weight!r} must be a number >= 0")
    if not any(float(w) > 0 for w in weights.values()):
        raise ConfigError(f"{where}: at least one {what} needs a weight > 0")


def augment_config(values: dict[str, Any] | None) -> AugmentConfig:
    """Build :class:`AugmentConfig` from the ``augment`` params section.

    Raises:
        ConfigError: an unknown key, a misspelled kind or fill, or a value out of range.
    """
    return build_config(AugmentConfig, dict(values or {}), where="augment")
