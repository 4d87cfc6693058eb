"""Paired statistics over seeds and the verdict rule the claims report applies.

Two arms compared in a claim ran with the same seeds, so each seed gives one difference
(arm minus baseline, signed so that positive is the direction the claim predicts). The
report gives the mean difference with a 95 % Student-t interval over seeds: a claim is
*supported* when the whole interval is above zero, *not supported* when it is below zero
(the data show the opposite), and *inconclusive at this budget* otherwise, including when
fewer than two seeds finished.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
INCONCLUSIVE = "inconclusive at this budget"
NOT_RUN = "not run yet"
CONFIDENCE = 0.95


@dataclass(frozen=True)
class PairedResult:
    """The paired difference over seeds, in the claim's direction."""

    n: int
    mean: float
    sd: float
    low: float
    high: float

    @property
    def verdict(self) -> str:
        """:data:`SUPPORTED`, :data:`NOT_SUPPORTED` or :data:`INCONCLUSIVE`."""
        if self.n < 2 or math.isnan(self.low):
            return INCONCLUSIVE
        if self.low > 0:
            return SUPPORTED
        if self.high < 0:
            return NOT_SUPPORTED
        return INCONCLUSIVE


def paired(arm: list[float], baseline: list[float], better: str = "higher") -> PairedResult:
    """Mean, standard deviation and 95 % interval of the per-seed differences ``arm -
    baseline`` (negated when lower is better), pairs in the same order.

    Raises:
        ValueError: the lists differ in length or are empty.
    """
    if len(arm) != len(baseline) or not arm:
        raise ValueError(f"paired: {len(arm)} and {len(baseline)} values; need equal, > 0")
    sign = 1.0 if better == "higher" else -1.0
    diffs = [sign * (a - b) for a, b in zip(arm, baseline, strict=True)]
    n = len(diffs)
    mean = sum(diffs) / n
    if n < 2:
        return PairedResult(n, mean, float("nan"), float("nan"), float("nan"))
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = t_quantile(n - 1) * sd / math.sqrt(n)
    return PairedResult(n, mean, sd, mean - half, mean + half)


def t_quantile(dof: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided Student-t critical value (4.303 for 2 degrees of freedom at 95 %)."""
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, dof))


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (NaN for one value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def claim_verdict(verdicts: list[str]) -> str:
    """One verdict per claim: supported when every comparison is, not supported when any
    shows the opposite, not run when none ran, inconclusive otherwise."""
    measured = [v for v in verdicts if v != NOT_RUN]
    if not measured:
        return NOT_RUN
    if any(v == NOT_SUPPORTED for v in measured):
        return NOT_SUPPORTED
    if len(measured) == len(verdicts) and all(v == SUPPORTED for v in measured):
        return SUPPORTED
    return INCONCLUSIVE
