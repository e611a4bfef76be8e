"""The coverage floors bench/traffic_accuracy.py states beside the per-week coverage goal (issue #13).

Why tested: the README cites them as the reason a goal is not met, so they must be right: the Markov
count distribution must reduce to the binomial without clustering and agree with a simulation with it,
and the clustering measured from bands must be the correlation of misses within a forecast day.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from bench.traffic_accuracy import calibrated_floor, miss_correlation, miss_count_distribution


def markov_misses(rng: np.random.Generator, days: int, hours: int, miss: float, rho: float) -> np.ndarray:
    """Miss indicators (days, hours) of the chain `miss_count_distribution` describes, simulated."""
    stay, enter = miss + (1 - miss) * rho, miss * (1 - rho)
    out = np.zeros((days, hours), dtype=bool)
    out[:, 0] = rng.random(days) < miss
    for h in range(1, hours):
        p = np.where(out[:, h - 1], stay, enter)
        out[:, h] = rng.random(days) < p
    return out


def bands_from(misses: np.ndarray) -> np.ndarray:
    """Rows truth, point, lower, upper, origin for hits/misses laid out as forecast days."""
    days, hours = misses.shape
    truth = np.where(misses.ravel(), 5.0, 1.0)  # a miss lies above the band [0, 2]
    return np.stack(
        [
            truth,
            np.ones(truth.size),
            np.zeros(truth.size),
            np.full(truth.size, 2.0),
            np.repeat(np.arange(days), hours),
        ]
    )


def test_without_clustering_the_count_is_binomial() -> None:
    assert np.allclose(miss_count_distribution(24, 0.2, 0.0), binom.pmf(np.arange(25), 24, 0.2))


def test_clustered_counts_match_a_simulation() -> None:
    rng = np.random.default_rng(7)
    simulated = markov_misses(rng, 200_000, 24, 0.2, 0.5).sum(axis=1)
    exact = miss_count_distribution(24, 0.2, 0.5)
    assert exact.sum() == pytest.approx(1.0)
    assert np.abs(np.bincount(simulated, minlength=25) / len(simulated) - exact).max() < 0.003
    # clustering spreads the count: the variance exceeds the binomial's 24 * 0.2 * 0.8
    mean = (np.arange(25) * exact).sum()
    assert mean == pytest.approx(4.8)
    assert ((np.arange(25) - mean) ** 2 * exact).sum() > 1.5 * 24 * 0.2 * 0.8


def test_a_week_inside_is_less_likely_when_misses_cluster() -> None:
    week = bands_from(np.zeros((7, 24), dtype=bool))
    independent = calibrated_floor([week])
    n = 168
    expected = binom.cdf(int(np.floor(0.85 * n)), n, 0.8) - binom.cdf(int(np.ceil(0.75 * n)) - 1, n, 0.8)
    assert independent["p_week"] == pytest.approx(expected)
    clustered = calibrated_floor([week, week], rho=0.5)
    assert clustered["p_week"] < independent["p_week"] - 0.1
    assert clustered["p_all"] == pytest.approx(clustered["p_week"] ** 2)


def test_miss_correlation_is_measured_within_forecast_days() -> None:
    rng = np.random.default_rng(3)
    misses = markov_misses(rng, 3000, 24, 0.2, 0.45)
    assert miss_correlation([bands_from(misses)]) == pytest.approx(0.45, abs=0.03)
    # shuffling the days' order keeps it: pairs across a day boundary are not counted
    assert miss_correlation([bands_from(misses[rng.permutation(3000)])]) == pytest.approx(
        miss_correlation([bands_from(misses)])
    )
    # rows recorded before the origin row existed give no estimate
    assert miss_correlation([bands_from(misses)[:4]]) is None
