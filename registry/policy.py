"""The promotion policy: what a challenger must show before it replaces the champion.

It lives in the ``registry`` section of ``params.yaml`` so a stricter gate is a reviewed
change to one file, not a code edit, and every CI run states the rules it applied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from components.config import build_config
from components.errors import ConfigError

SECTION = "registry"
REFUSE_NEW_TEST_DATA = "refuse"
REPLACE_ON_NEW_TEST_DATA = "replace"
NEW_TEST_DATA: tuple[str, ...] = (REFUSE_NEW_TEST_DATA, REPLACE_ON_NEW_TEST_DATA)


@dataclass(frozen=True)
class GatePolicy:
    """Settings of the ``registry`` section (see params.yaml)."""

    model_prefix: str = "ferops"         # registered model per task: <prefix>-<task>
    primary_metric: str = "test_uar"     # a test_* metric logged by the train stage
    min_delta: float = 0.005             # challenger must beat the champion by at least this
    class_recall_floor: float = 0.1      # no class's test recall may fall below this
    max_latency_ms: float | None = None  # budget on the version tag ``latency_ms``; None = off
    lock_ttl_s: float = 120.0            # a promotion lock older than this is stale
    # Optional evidence beyond the primary metric: minimums on other test metrics (e.g. the
    # occluded test set, {test_occ25_uar: 0.4}) and the most any class's recall may fall
    # below the champion's recall of that class (None = off).
    min_metrics: dict[str, float] = field(default_factory=dict)
    max_recall_drop: float | None = None
    # A gain must also be significant: the one-sided p-value of a paired bootstrap over the
    # test samples (both models' logged predictions) at most this; None = off.
    significance: float | None = None
    bootstrap_resamples: int = 1000
    # A version scored on other test data than the champion's cannot be compared with it:
    # ``refuse`` keeps the champion (no silent switch of a task's test set); ``replace`` makes
    # the newest version's test data the task's, so its best version takes the champion's
    # place on its own checks alone (the old champion stays ``previous-champion``).
    new_test_data: str = REFUSE_NEW_TEST_DATA

    def __post_init__(self) -> None:
        if not self.model_prefix or any(c in self.model_prefix for c in "/:"):
            raise ValueError(f"model_prefix {self.model_prefix!r} must be non-empty without / :")
        if not self.primary_metric.startswith("test_"):
            raise ValueError(
                f"primary_metric {self.primary_metric!r} must be a test_* metric (e.g. test_uar)"
            )
        if not (math.isfinite(self.min_delta) and self.min_delta >= 0):
            raise ValueError(f"min_delta {self.min_delta!r} must be a finite number >= 0")
        if not 0.0 <= self.class_recall_floor <= 1.0:
            raise ValueError(f"class_recall_floor {self.class_recall_floor!r} must be in [0, 1]")
        if self.max_latency_ms is not None and not self.max_latency_ms > 0:
            raise ValueError(f"max_latency_ms {self.max_latency_ms!r} must be > 0 or null")
        if not self.lock_ttl_s > 0:
            raise ValueError(f"lock_ttl_s {self.lock_ttl_s!r} must be > 0")
        for metric, minimum in self.min_metrics.items():
            if not str(metric).startswith("test_"):
                raise ValueError(f"min_metrics: {metric!r} must be a test_* metric")
            if not isinstance(minimum, int | float) or not 0.0 <= minimum <= 1.0:
                raise ValueError(f"min_metrics.{metric}: {minimum!r} must be a number in [0, 1]")
        if self.significance is not None and not 0.0 < self.significance < 1.0:
            raise ValueError(f"significance {self.significance!r} must be in (0, 1) or null")
        if self.bootstrap_resamples < 100:
            raise ValueError(f"bootstrap_resamples {self.bootstrap_resamples!r} must be >= 100")
        if self.new_test_data not in NEW_TEST_DATA:
            raise ValueError(f"new_test_data {self.new_test_data!r} must be one of "
                             f"{', '.join(NEW_TEST_DATA)}")
        if self.max_recall_drop is not None and not 0.0 <= self.max_recall_drop <= 1.0:
            raise ValueError(f"max_recall_drop {self.max_recall_drop!r} must be in [0, 1] "
                             "or null")

    def model_name(self, task: str) -> str:
        """The registered model that collects every candidate of ``task``."""
        return f"{self.model_prefix}-{task}"


def load_policy(params: dict[str, Any]) -> GatePolicy:
    """The policy from a whole params mapping; a missing section means the defaults.

    Raises:
        ConfigError: an unknown key or a value of the wrong type or range.
    """
    values = params.get(SECTION) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"params.yaml: section {SECTION!r} must be a mapping, got {values!r}")
    return build_config(GatePolicy, dict(values), where=SECTION)
