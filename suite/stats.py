"""Is a row better than its reference? The difference of mean top-1 over seeds, its 95 % confidence
interval by Welch's t (unequal variances; scipy.stats.ttest_ind), and a verdict a reader can cite:
"better" / "worse" when the interval excludes zero, "within noise" when it does not, and no verdict
at all when either side has fewer than two seeds (one run cannot show its own noise).

A table makes many comparisons (kd: 19 rows against one student); `adjusted_verdicts` controls the false
discovery rate across them (Benjamini-Hochberg, `scipy.stats.false_discovery_control`): a row is better or
worse only when its adjusted p-value (q) is below 1 - confidence."""
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
    verdict: str  # "better" | "worse" | "within noise" | "n = 1: no verdict" (unadjusted, this pair alone)
    p_value: float | None = None  # Welch's two-sided p; None with fewer than two seeds on either side

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
        p_value = 1.0 if math.isclose(difference, 0.0, abs_tol=1e-12) else 0.0
    else:
        from scipy.stats import ttest_ind

        test = ttest_ind(values, reference, equal_var=False)
        interval = test.confidence_interval(confidence)
        low, high, p_value = float(interval.low), float(interval.high), float(test.pvalue)
    if math.isclose(low, 0.0, abs_tol=1e-12) and math.isclose(high, 0.0, abs_tol=1e-12):
        verdict = "within noise"
    else:
        verdict = "better" if low > 0 else "worse" if high < 0 else "within noise"
    return Comparison(difference, low, high, verdict, p_value)


def fdr_q(comparisons: list[Comparison | None]) -> list[float | None]:
    """Benjamini-Hochberg-adjusted p-values (q) over the comparisons that have a p-value; None for the others."""
    tested = [i for i, c in enumerate(comparisons) if c is not None and c.p_value is not None]
    q: dict[int, float] = {}
    if tested:
        from scipy.stats import false_discovery_control

        q = dict(zip(tested, map(float, false_discovery_control([comparisons[i].p_value for i in tested], method="bh"))))
    return [q.get(i) for i in range(len(comparisons))]


def adjusted_verdicts(comparisons: list[Comparison | None], confidence: float = CONFIDENCE) -> list[str | None]:
    """Each comparison's verdict with the false discovery rate controlled across all of them (Benjamini-Hochberg
    over the p-values of those that have one): "better (q = 0.004)", "within noise (q = 0.310)", "worse (q < 0.001)",
    or the unadjusted "n = 1: no verdict"; None stays None."""
    q = fdr_q(comparisons)
    out: list[str | None] = []
    for i, c in enumerate(comparisons):
        if c is None or q[i] is None:
            out.append(None if c is None else c.verdict)
            continue
        significant = q[i] < 1 - confidence and not math.isclose(c.difference, 0.0, abs_tol=1e-12)
        word = ("better" if c.difference > 0 else "worse") if significant else "within noise"
        out.append(f"{word} (q {format_q(q[i])})")
    return out


def format_q(q: float) -> str:
    return "< 0.001" if q < 0.001 else f"= {q:.3f}"


@dataclass(frozen=True)
class RankAgreement:
    tau: float  # Kendall's tau-b between the two orderings
    low: float  # bootstrap interval over the suite's seeds
    high: float
    n: int  # methods ranked by both


def rank_agreement(ours: dict[str, list[float]], theirs: dict[str, float], confidence: float = CONFIDENCE,
                   resamples: int = 2000, seed: int = 0) -> RankAgreement | None:
    """Kendall's tau between the suite's ordering of methods (mean over seeds) and a source's reported one, with
    a percentile bootstrap interval that resamples each method's seeds; None with fewer than 3 common methods."""
    import numpy as np
    from scipy.stats import kendalltau

    names = sorted(n for n in ours if ours[n] and n in theirs)
    if len(names) < 3:
        return None
    reported = [theirs[n] for n in names]
    tau = float(kendalltau([statistics.fmean(ours[n]) for n in names], reported).statistic)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        means = [float(np.mean(rng.choice(ours[n], size=len(ours[n])))) for n in names]
        draws.append(kendalltau(means, reported).statistic)
    low, high = np.nanquantile(draws, [(1 - confidence) / 2, (1 + confidence) / 2])
    return RankAgreement(tau, float(low), float(high), len(names))