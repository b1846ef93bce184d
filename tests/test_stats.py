"""Verdicts a reader can cite: the Welch 95 % interval of a difference of means, on constructed numbers."""
import pytest
from scipy import stats as scipy_stats

from suite.stats import Comparison, adjusted_verdicts, compare


def test_a_clear_win_is_better_with_the_welch_interval():
    c = compare([80.1, 80.3, 80.2], [77.0, 77.4, 77.2])
    assert c.verdict == "better" and c.difference == pytest.approx(3.0)
    # the interval is Welch's: mean difference ± t(0.975, Welch-Satterthwaite df) × standard error
    a, b = [80.1, 80.3, 80.2], [77.0, 77.4, 77.2]
    va, vb = scipy_stats.tvar(a) / 3, scipy_stats.tvar(b) / 3
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)
    half = scipy_stats.t.ppf(0.975, df) * (va + vb) ** 0.5
    assert (c.low, c.high) == pytest.approx((3.0 - half, 3.0 + half))
    assert c.describe() == f"+3.00 [{3.0 - half:+.2f}, {3.0 + half:+.2f}]"


def test_a_clear_loss_is_worse():
    assert compare([70.0, 70.5, 69.8], [77.0, 77.4, 77.2]).verdict == "worse"


def test_overlapping_seeds_are_within_noise():
    c = compare([77.6, 78.3, 77.5], [77.3, 78.1, 77.9])
    assert c.verdict == "within noise" and c.low < 0 < c.high


def test_one_seed_gives_no_verdict_but_the_difference():
    c = compare([78.0], [77.0, 77.5, 77.2])
    assert c.verdict == "n = 1: no verdict" and c.low is None and c.describe() == "+0.77"


def test_identical_seeds_without_spread_are_exact():
    assert compare([50.0, 50.0], [50.0, 50.0]).verdict == "within noise"
    assert compare([51.0, 51.0], [50.0, 50.0]).verdict == "better"


def test_the_false_discovery_rate_is_held_across_a_tables_verdicts():
    """Benjamini-Hochberg: sorted p (0.001, 0.04, 0.5, 0.9) over 4 tests -> q = (0.004, 0.08, 0.667, 0.9); the
    0.04 row, "better" on its own, is within noise among four comparisons."""
    ps = [0.04, 0.5, 0.001, 0.9]
    comparisons = [Comparison(+1.0, 0.1, 1.9, "better", ps[0]), Comparison(-0.2, -1.0, 0.6, "within noise", ps[1]),
                   Comparison(-3.0, -4.0, -2.0, "worse", ps[2]), Comparison(0.1, -1.0, 1.2, "within noise", ps[3]),
                   Comparison(2.0, None, None, "n = 1: no verdict"), None]
    assert adjusted_verdicts(comparisons) == ["within noise (q = 0.080)", "within noise (q = 0.667)",
                                              "worse (q = 0.004)", "within noise (q = 0.900)",
                                              "n = 1: no verdict", None]


def test_one_comparison_keeps_its_own_p_value():
    c = compare([80.1, 80.3, 80.2], [77.0, 77.4, 77.2])
    p = scipy_stats.ttest_ind([80.1, 80.3, 80.2], [77.0, 77.4, 77.2], equal_var=False).pvalue
    assert c.p_value == pytest.approx(p)
    assert adjusted_verdicts([c]) == [f"better (q {'< 0.001' if p < 0.001 else f'= {p:.3f}'})"]
