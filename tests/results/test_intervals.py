"""Confidence intervals of the summary's times (bridge.results.intervals): the hierarchical bootstrap
covers the true median as often as it says on synthetic timings with known answers, gives no interval
where repeats cannot be resampled, and ratios tell a real difference from noise."""
import numpy as np
import pytest

from bridge.results.intervals import LEVEL, ONE_REPEAT, median_interval, ratio_interval

DRAWS, REPEATS, EPOCHS = 1000, 12, 15


def skewed(rng, n):  # lognormal: a long right tail, as epoch times have; median 1
    return np.exp(rng.normal(0.0, 0.4, n))


def bimodal(rng, n):  # 70% near 1.0, 30% near 1.6 (a run on a slow path now and then)
    return np.where(rng.random(n) < 0.7, rng.normal(1.0, 0.05, n), rng.normal(1.6, 0.05, n))


@pytest.mark.parametrize("population", [skewed, bimodal], ids=["skewed", "bimodal"])
def test_the_95_percent_interval_covers_the_true_median_90_to_99_percent_of_the_time(population):
    """Each draw: 12 repeats whose medians come from ``population``, each with 15 epochs scattered around
    its median (within-repeat noise, median-preserving); the target is the population's median."""
    rng = np.random.default_rng(7)
    truth = float(np.median(population(np.random.default_rng(0), 2_000_000)))
    covered = 0
    for _ in range(DRAWS):
        medians = population(rng, REPEATS)
        groups = [m * np.exp(rng.normal(0.0, 0.05, EPOCHS)) for m in medians]
        iv = median_interval(groups)
        covered += iv.low <= truth <= iv.high
    print(f"\n{population.__name__}: covered {covered} of {DRAWS} (level {LEVEL})")
    assert 0.90 * DRAWS <= covered <= 0.99 * DRAWS


def test_one_repeat_gives_no_interval_and_says_why():
    iv = median_interval([np.array([1.0, 1.1, 0.9, 1.05])])
    assert iv.point == pytest.approx(1.025) and not iv.known and iv.reason == ONE_REPEAT
    assert "--repeats" in iv.reason and np.isnan(iv.relative_width)
    assert median_interval([]).reason == "no value"


def test_the_interval_is_the_same_for_the_same_data_and_brackets_the_point():
    rng = np.random.default_rng(3)
    groups = [rng.lognormal(0, 0.2, 10) for _ in range(5)]
    a, b = median_interval(groups), median_interval(groups)
    assert (a.low, a.high) == (b.low, b.high) and a.low <= a.point <= a.high and a.repeats == 5
    rate = a.scaled(100.0)  # examples per second from seconds: the bounds swap
    assert rate.low == pytest.approx(100 / a.high) and rate.high == pytest.approx(100 / a.low)


def test_a_ratio_s_interval_excludes_1_for_a_real_difference_and_includes_it_for_none():
    rng = np.random.default_rng(11)
    fast = [rng.lognormal(np.log(1.0), 0.05, 10) for _ in range(5)]
    slow = [rng.lognormal(np.log(1.3), 0.05, 10) for _ in range(5)]
    same = [rng.lognormal(np.log(1.0), 0.05, 10) for _ in range(5)]
    slower = ratio_interval(slow, fast)
    assert slower.point == pytest.approx(1.3, rel=0.05) and slower.low > 1.15
    alike = ratio_interval(same, fast)
    assert alike.low < 1 < alike.high
    assert ratio_interval(slow[:1], fast).reason == ONE_REPEAT
