"""The ``validate`` section of params.yaml as a typed, checked dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from components.config import build_config
from components.errors import ConfigError


@dataclass(frozen=True)
class ValidateConfig:
    """Thresholds and exclusion switches of the validation stage.

    ``require_consistent_size`` turns mixed image sizes within a modality from a warning into
    an error; ``keep_official_test`` keeps excluded test rows, flagged, so a dataset's official
    test split is scored whole beside its de-duplicated subset; ``workers`` is the number
    of decoding threads (0 = one per CPU core, at most 8).
    """

    min_samples_per_class: int = 5
    blank_std_threshold: float = 2.0
    frames_range: list[int] = field(default_factory=lambda: [4, 1000])
    max_image_side: int = 4096
    exclude_duplicates: bool = False
    exclude_leakage: bool = True
    exclude_conflicts: bool = True
    exclude_blank: bool = True
    require_consistent_size: bool = False
    # Keep every test row, flagging the ones an exclusion rule hits (column
    # ``excluded_reason``) instead of dropping them: the official test set stays whole for
    # comparison with published figures, and preprocess writes ``test_dedup`` without them.
    keep_official_test: bool = False
    workers: int = 0

    def __post_init__(self) -> None:
        if self.min_samples_per_class < 0:
            raise ConfigError(
                f"validate.min_samples_per_class: {self.min_samples_per_class} must be >= 0"
            )
        if self.blank_std_threshold < 0:
            raise ConfigError(
                f"validate.blank_std_threshold: {self.blank_std_threshold} must be >= 0"
            )
        frames = list(self.frames_range)
        if (
            len(frames) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in frames)
            or not 1 <= frames[0] <= frames[1]
        ):
            raise ConfigError(
                f"validate.frames_range: {self.frames_range!r} must be [min, max] integers "
                "with 1 <= min <= max"
            )
        if self.max_image_side < 1:
            raise ConfigError(f"validate.max_image_side: {self.max_image_side} must be >= 1")
        if self.workers < 0:
            raise ConfigError(f"validate.workers: {self.workers} must be >= 0 (0 = auto)")


def validate_config(values: dict[str, Any] | None) -> ValidateConfig:
    """Build :class:`ValidateConfig` from the ``validate`` params section.

    Raises:
        ConfigError: an unknown key or a value of the wrong type or range.
    """
    return build_config(ValidateConfig, dict(values or {}), where="validate")
