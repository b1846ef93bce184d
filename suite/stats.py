"""Is a row better than its reference? The difference of mean top-1 over seeds, its 95 % confidence
interval by Welch's t (unequal variances; scipy.stats.ttest_ind), and a verdict a reader can cite:
"better" / "worse" when the interval excludes zero, "within noise" when it does not, and no verdict
at all when either side has fewer than two seeds (one run cannot show its own noise)."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Comparison:
    difference: float  # mean(values) - mean(reference)
    low: float | None  # the interval; None with fewer than two seeds on either side
    high: float | None
    verdict: str  # "better" | "worse" | "within noise" | "n = 1: no verdict"

    def describe(self) -> str:
        if self.low is None:
            return f"{self.difference:+.2f}"
        return f"{self.difference:+.2f} [{self.low:+.2f}, {self.high:+.2f}]"


def compare(values: list[float], reference: list[float], confidence: float = CONFIDENCE) -> Comparison:
    """`values` against `reference` (e.g. top-1 per seed of a method and of its baseline)."""
    if not values or not reference:
        raise ValueError("compare needs at least one value on each side")
    difference = statistics.fmean(values) - statistics.fmean(reference)
    if len(values) < 2 or len(reference) < 2:
        return Comparison(difference, None, None, f"n = {min(len(values), len(reference))}: no verdict")
    if statistics.variance(values) == 0 and statistics.variance(reference) == 0:  # t is undefined: exact
        low = high = difference
    else:
        from scipy.stats import ttest_ind

        interval = ttest_ind(values, reference, equal_var=False).confidence_interval(confidence)
        low, high = float(interval.low), float(interval.high)
    if math.isclose(low, 0.0, abs_tol=1e-12) and math.isclose(high, 0.0, abs_tol=1e-12):
        verdict = "within noise"
    else:
        verdict = "better" if low > 0 else "worse" if high < 0 else "within noise"
    return Comparison(difference, low, high, verdict)
