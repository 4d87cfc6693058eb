"""Typed settings of the ``preprocess`` params section.

The stage reads only its own section, so DVC re-runs preprocessing (and what follows) when a
value here changes. :func:`preprocess_config` checks names and types through
:func:`components.config.build_config` and the value ranges here, naming the bad key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from components.config import build_config
from components.errors import ConfigError

WHERE = "params.yaml:preprocess"
INPUT_MODES: tuple[str, ...] = ("auto", "photo", "crop")
CLIP_SAMPLINGS: tuple[str, ...] = ("interpolate", "keyframes")
FACE_POLICIES: tuple[str, ...] = ("center_crop", "drop")
# auto mode treats an image whose longer side is at most this many pixels as a face crop.
CROP_MAX_SIDE = 64


@dataclass(frozen=True)
class EnhanceConfig:
    """Seed 001 unsharp-mask enhancement ``P = a*(I - lowpass(I)) + b*I`` (off by default)."""

    enabled: bool = False
    sigma: float = 1.5  # Gaussian sigma at a 48 px face; scaled with the output size
    a: float = 1.0
    b: float = 1.0

    def __post_init__(self) -> None:
        if self.sigma <= 0:
            raise ConfigError(f"{WHERE}.enhance.sigma: must be > 0, got {self.sigma}")


@dataclass(frozen=True)
class PreprocessConfig:
    """Every knob of the preprocessing stage; defaults follow methods.md 1.5, 2.2 and 5.3."""

    size: int = 48
    clip_size: int = 48
    clip_frames: int = 8
    clip_sampling: str = "interpolate"
    input: str = "auto"
    eyes: list[list[float]] = field(default_factory=lambda: [[0.3, 0.38], [0.7, 0.38]])
    grayscale: bool = False
    align: bool = True  # level the eyes (seed 000's rotation); false: the ablation of claim 5
    stretch: bool = True  # percentile contrast stretch of colour; false: the ablation
    stretch_percentiles: list[float] = field(default_factory=lambda: [1.0, 99.0])
    depth_window_mm: float = 100.0
    enhance: Any = field(default_factory=EnhanceConfig)
    face_policy: str = "center_crop"
    workers: int = 0
    contact_sheet_examples: int = 8

    def __post_init__(self) -> None:
        _check_positive("size", self.size, minimum=8)
        _check_positive("clip_size", self.clip_size, minimum=8)
        _check_positive("clip_frames", self.clip_frames, minimum=1)
        _check_choice("clip_sampling", self.clip_sampling, CLIP_SAMPLINGS)
        _check_choice("input", self.input, INPUT_MODES)
        _check_choice("face_policy", self.face_policy, FACE_POLICIES)
        _check_eyes(self.eyes)
        for key in ("align", "stretch"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{WHERE}.{key}: must be true or false, "
                                  f"got {getattr(self, key)!r}")
        low, high = _pair("stretch_percentiles", self.stretch_percentiles)
        if not 0 <= low < high <= 100:
            raise ConfigError(
                f"{WHERE}.stretch_percentiles: need 0 <= low < high <= 100, got {low}, {high}"
            )
        if self.depth_window_mm <= 0:
            raise ConfigError(f"{WHERE}.depth_window_mm: must be > 0, got {self.depth_window_mm}")
        if self.workers < 0:
            raise ConfigError(f"{WHERE}.workers: must be >= 0 (0 = all cores), got {self.workers}")
        if self.contact_sheet_examples < 0:
            raise ConfigError(
                f"{WHERE}.contact_sheet_examples: must be >= 0, got {self.contact_sheet_examples}"
            )
        if isinstance(self.enhance, dict):
            enhance = build_config(EnhanceConfig, self.enhance, where=f"{WHERE}.enhance")
            object.__setattr__(self, "enhance", enhance)
        elif not isinstance(self.enhance, EnhanceConfig):
            raise ConfigError(f"{WHERE}.enhance: expected a mapping, got {self.enhance!r}")

    @property
    def eye_points(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The canonical (left, right) eye positions as fractions of the output side."""
        (lx, ly), (rx, ry) = self.eyes
        return (float(lx), float(ly)), (float(rx), float(ry))

    def as_dict(self) -> dict[str, Any]:
        """Plain values for meta.json, so every output names the params that made it."""
        return {
            "size": self.size,
            "clip_size": self.clip_size,
            "clip_frames": self.clip_frames,
            "clip_sampling": self.clip_sampling,
            "input": self.input,
            "eyes": [list(map(float, p)) for p in self.eyes],
            "grayscale": self.grayscale,
            "align": self.align,
            "stretch": self.stretch,
            "stretch_percentiles": [float(p) for p in self.stretch_percentiles],
            "depth_window_mm": float(self.depth_window_mm),
            "enhance": {
                "enabled": self.enhance.enabled,
                "sigma": float(self.enhance.sigma),
                "a": float(self.enhance.a),
                "b": float(self.enhance.b),
            },
            "face_policy": self.face_policy,
            "workers": self.workers,
            "contact_sheet_examples": self.contact_sheet_examples,
        }


def preprocess_config(values: dict[str, Any] | None) -> PreprocessConfig:
    """Build the settings from the ``preprocess`` section (missing keys take defaults).

    Raises:
        ConfigError: an unknown key, a wrongly typed value or a value out of range.
    """
    return build_config(PreprocessConfig, dict(values or {}), where=WHERE)


def _check_positive(key: str, value: int, *, minimum: int) -> None:
    if value < minimum:
        raise ConfigError(f"{WHERE}.{key}: must be >= {minimum}, got {value}")


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{WHERE}.{key}: {value!r} is not one of {list(choices)}")


def _pair(key: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ConfigError(f"{WHERE}.{key}: expected two numbers, got {value!r}")
    try:
        return float(value[0]), float(value[1])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{WHERE}.{key}: expected two numbers, got {value!r}") from exc


def _check_eyes(eyes: Any) -> None:
    if not isinstance(eyes, list | tuple) or len(eyes) != 2:
        raise ConfigError(f"{WHERE}.eyes: expected [[lx, ly], [rx, ry]], got {eyes!r}")
    (lx, ly), (rx, ry) = (_pair("eyes", p) for p in eyes)
    if not all(0 < v < 1 for v in (lx, ly, rx, ry)) or lx >= rx:
        raise ConfigError(
            f"{WHERE}.eyes: positions must be fractions in (0, 1) with left x < right x, "
            f"got {eyes!r}"
        )
