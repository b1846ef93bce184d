"""Verdicts a reader can cite: the Welch 95 % interval of a difference of means, on constructed numbers."""
import pytest
from scipy import stats as scipy_stats

from suite.stats import compare


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
