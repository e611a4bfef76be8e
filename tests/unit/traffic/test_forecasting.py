"""Forecasting on synthetic flows whose daily/weekly shape and noise are known, so accuracy and interval
coverage can be checked against the truth rather than against the code's own output."""

from __future__ import annotations

import json
import os

import holidays
import numpy as np
import pandas as pd
import pytest

from tasks.traffic import combination
from tasks.traffic import forecasting as fc
from tasks.traffic.combination import (
    CALIBRATION_OFFSET,
    COMBINATION,
    FALLBACK_LEVEL_MARGIN,
    HOLIDAY_WIDENING_CAP,
    SEASONAL_MEDIAN,
    backtest_pairs,
    band_weights,
    calibrated_level,
    combination_weights,
    conformal_bands,
    holiday_widening,
    series_weights_win,
    weighted_quantiles,
)
from tasks.traffic.data import TrafficSeries, load_traffic_csv
from tasks.traffic.forecasting import (
    MODEL,
    NAIVE_DAILY,
    NAIVE_WEEKLY,
    ForecastConfig,
    ForecastResult,
    forecast,
    seasonal_naive,
)

FAST = ForecastConfig(boosting_rounds=60)


def _shape(index: pd.DatetimeIndex, working: np.ndarray | None = None) -> np.ndarray:
    """Commuter profile: morning and evening peaks on working days, one flat midday hump otherwise."""
    hour = (index.hour + index.minute / 60).to_numpy()
    weekday = index.day_of_week.to_numpy() < 5 if working is None else working
    peaks = 900 * np.exp(-((hour - 8) ** 2) / 2) + 800 * np.exp(-((hour - 17.5) ** 2) / 3)
    hump = 500 * np.exp(-((hour - 14) ** 2) / 12)
    return 80 + np.where(weekday, peaks + 200 * np.exp(-((hour - 12.5) ** 2) / 8), hump)


def _series(
    days: int,
    freq: str = "1h",
    n_series: int = 2,
    noise: float = 0.08,
    seed: int = 0,
    start: str = "2024-04-29",
) -> tuple[TrafficSeries, pd.DataFrame]:
    """Observed series plus one day of noise-free truth after it; each road has its own level."""
    rng = np.random.default_rng(seed)
    steps = int(pd.Timedelta(days=days + 1) / pd.Timedelta(freq))
    index = pd.date_range(start, periods=steps, freq=freq, name="time")
    levels = np.linspace(1.0, 3.0, n_series)
    clean = _shape(index)[:, None] * levels
    noisy = clean * rng.lognormal(0.0, noise, clean.shape)
    columns = [f"road_{i}" for i in range(n_series)]
    observed = int(pd.Timedelta(days=days) / pd.Timedelta(freq))
    frame = pd.DataFrame(noisy[:observed], index=index[:observed], columns=columns)
    frame.index.freq = pd.tseries.frequencies.to_offset(freq)
    truth = pd.DataFrame(noisy[observed:], index=index[observed:], columns=columns)
    series = TrafficSeries(frame=frame, time_column="time", interval=pd.Timedelta(freq))
    return series, truth


@pytest.fixture(scope="module")
def hourly() -> tuple[TrafficSeries, pd.DataFrame, ForecastResult, list[tuple[float, str]]]:
    series, truth = _series(days=35, n_series=6, seed=1)
    calls: list[tuple[float, str]] = []
    result = forecast(series, FAST, progress=lambda f, s: calls.append((f, s)))
    return series, truth, result, calls


def test_outputs_look_like_the_upload(hourly: tuple) -> None:
    series, _, result, _ = hourly
    assert list(result.point.columns) == ["time", *series.columns]
    assert len(result.point) == 24
    assert result.point["time"].iloc[0] == "2024-06-03 00:00:00"
    assert list(result.bounds.columns[1:3]) == ["road_0_lower", "road_0_upper"]
    assert list(result.combined().columns[:4]) == ["time", "road_0", "road_0_lower", "road_0_upper"]
    assert result.point.drop(columns="time").notna().all().all()


def test_bands_are_ordered_and_non_negative(hourly: tuple) -> None:
    _, _, result, _ = hourly
    point = result.point.drop(columns="time").to_numpy()
    lower = result.bounds.filter(like="_lower").to_numpy()
    upper = result.bounds.filter(like="_upper").to_numpy()
    assert (lower >= 0).all()
    assert (lower <= point).all() and (point <= upper).all()
    assert (upper > lower).mean() > 0.95


def test_model_learns_the_pattern_and_beats_the_naives(hourly: tuple) -> None:
    series, truth, result, _ = hourly
    point = result.point.drop(columns="time").to_numpy()
    naive = seasonal_naive(series, series.steps_per_week, 24).to_numpy()
    model_error = np.abs(point - truth.to_numpy()).mean()
    naive_error = np.abs(naive - truth.to_numpy()).mean()
    assert model_error < 0.9 * naive_error
    assert all(m["method"] != NAIVE_DAILY for m in result.metrics.values())


def test_eighty_percent_bands_cover_about_eighty_percent(hourly: tuple) -> None:
    _, truth, result, _ = hourly
    lower = result.bounds.filter(like="_lower").to_numpy()
    upper = result.bounds.filter(like="_upper").to_numpy()
    inside = (truth.to_numpy() >= lower) & (truth.to_numpy() <= upper)
    assert 0.68 <= inside.mean() <= 0.92, inside.mean()


def test_chosen_method_never_worse_than_a_naive_in_backtest(hourly: tuple) -> None:
    _, _, result, _ = hourly
    for metrics in result.metrics.values():
        naive_best = min(metrics["candidates"][m]["mae"] for m in (NAIVE_WEEKLY, NAIVE_DAILY))
        assert metrics["mae"] <= naive_best
        assert metrics["mase"] > 0 and 0 < metrics["wape"] < 1


def test_metrics_are_plain_json(hourly: tuple) -> None:
    _, _, result, _ = hourly
    decoded = json.loads(json.dumps(result.metrics))
    assert decoded == result.metrics
    assert json.loads(json.dumps(result.info))["horizon"] == 24


def test_progress_runs_from_zero_to_one(hourly: tuple) -> None:
    *_, calls = hourly
    fractions = [f for f, _ in calls]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    assert {"backtest fit", "final fit"} <= {s for _, s in calls}


def test_short_history_gets_the_naive_forecast() -> None:
    series, _ = _series(days=10, n_series=1)
    result = forecast(series, ForecastConfig(holiday_country=None, boosting_rounds=60))
    assert result.metrics["road_0"]["method"] in (NAIVE_WEEKLY, NAIVE_DAILY)
    assert MODEL not in result.metrics["road_0"]["candidates"]
    assert result.info["fit_seconds"] == 0


def test_late_starting_road_gets_naive_while_the_others_may_use_the_model() -> None:
    series, _ = _series(days=35, n_series=2, seed=3)
    frame = series.frame.copy()
    frame.iloc[: 24 * 25, 1] = np.nan
    result = forecast(TrafficSeries(frame=frame, time_column="time", interval=series.interval), FAST)
    assert result.metrics["road_1"]["method"] in (NAIVE_WEEKLY, NAIVE_DAILY)
    assert result.metrics["road_1"]["history_steps"] == 24 * 10
    assert MODEL in result.metrics["road_0"]["candidates"]


def test_five_minute_series_with_gaps() -> None:
    series, truth = _series(days=16, freq="5min", n_series=1, noise=0.05, seed=2)
    frame = series.frame.copy()
    frame.iloc[-600:-500] = np.nan
    frame.iloc[-2016 - 50 : -2016 + 50] = np.nan
    gappy = TrafficSeries(frame=frame, time_column="time", interval=series.interval)
    result = forecast(gappy, ForecastConfig(holiday_country=None, boosting_rounds=60))
    assert len(result.point) == 288
    point = result.point["road_0"].to_numpy()
    assert np.isfinite(point).all()
    assert np.abs(point - truth["road_0"].to_numpy()).mean() < 0.2 * truth["road_0"].mean()


def test_horizon_longer_than_a_day() -> None:
    series, _ = _series(days=21, n_series=1)
    result = forecast(series, ForecastConfig(horizon=60, holiday_country=None, boosting_rounds=60))
    assert len(result.point) == len(result.bounds) == 60
    assert result.point["road_0"].notna().all()


@pytest.fixture(scope="module")
def chinese_year() -> pd.Series:
    """Hourly flow through 2024 following China's calendar: holidays at a third of the weekend flow,
    make-up workdays (调休 Sundays/Saturdays) with weekday traffic."""
    calendar = holidays.country_holidays("CN", years=2024)
    index = pd.date_range("2024-01-01", "2024-10-01 23:00", freq="h", name="time")
    dates = index.normalize()
    holiday = dates.isin(pd.DatetimeIndex(list(calendar)))
    makeup = dates.isin(pd.DatetimeIndex(list(calendar.weekend_workdays)))
    working = ~holiday & ((index.day_of_week < 5) | makeup)
    rng = np.random.default_rng(5)
    values = _shape(index, working) * np.where(holiday, 0.35, 1.0) * rng.lognormal(0, 0.05, len(index))
    return pd.Series(values, index=index, name="road")


def _forecast_day(flow: pd.Series, day: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Model and weekly-naive forecasts for `day` from everything before it, plus the truth."""
    start = pd.Timestamp(day)
    observed = flow[: start - pd.Timedelta(hours=1)].to_frame().asfreq("h")
    series = TrafficSeries(frame=observed, time_column="time", interval=pd.Timedelta(hours=1))
    result = forecast(series, ForecastConfig(holiday_country="CN", boosting_rounds=60))
    naive = seasonal_naive(series, 168, 24)["road"].to_numpy()
    truth = flow[start : start + pd.Timedelta(hours=23)].to_numpy()
    return result.point["road"].to_numpy(), naive, truth, result.metrics["road"]["method"]


def test_national_day_dip_is_learned_from_earlier_holidays(chinese_year: pd.Series) -> None:
    point, naive, truth, method = _forecast_day(chinese_year, "2024-10-01")
    assert method.startswith(COMBINATION)
    assert np.abs(point - truth).mean() < 0.5 * np.abs(naive - truth).mean()


def test_make_up_workday_gets_weekday_traffic(chinese_year: pd.Series) -> None:
    point, naive, truth, method = _forecast_day(chinese_year, "2024-09-29")
    assert method.startswith(COMBINATION)
    assert np.abs(point - truth).mean() < 0.5 * np.abs(naive - truth).mean()


def test_fit_leaves_thread_settings_as_they_were() -> None:
    before = os.environ.get("OMP_NUM_THREADS")
    series, _ = _series(days=15, n_series=1)
    forecast(series, ForecastConfig(holiday_country=None, boosting_rounds=60))
    assert os.environ.get("OMP_NUM_THREADS") == before


@pytest.mark.parametrize(
    "kwargs",
    [{"horizon": 0}, {"interval_level": 1.0}, {"interval_level": 0.0}, {"holiday_country": "XX"}],
)
def test_invalid_config_is_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ForecastConfig(**kwargs)


def test_upload_to_forecast_keeps_column_names_and_time_style() -> None:
    series, _ = _series(days=9, n_series=2)
    frame = series.frame.rename(columns={"road_0": "路口A", "road_1": "路口B"}).rename_axis("时间")
    frame.index = frame.index.strftime("%Y/%-m/%-d %-H:%M")
    upload = load_traffic_csv(frame.to_csv().encode("gb18030"))
    result = forecast(upload, ForecastConfig(holiday_country=None, boosting_rounds=60))
    assert list(result.point.columns) == ["时间", "路口A", "路口B"]
    assert result.point["时间"].iloc[0] == "2024/5/8 0:00"
    assert list(result.bounds.columns) == ["时间", "路口A_lower", "路口A_upper", "路口B_lower", "路口B_upper"]


def test_sensor_silent_during_the_backtest_still_gets_bands() -> None:
    series, _ = _series(days=20, n_series=2, seed=4)
    frame = series.frame.copy()
    frame.iloc[-24 * 7 :, 1] = np.nan
    result = forecast(TrafficSeries(frame=frame, time_column="time", interval=series.interval), FAST)
    assert result.metrics["road_1"]["mae"] is None
    width = result.bounds["road_1_upper"] - result.bounds["road_1_lower"]
    assert (width > 0).all()
    assert result.point["road_1"].notna().all()


# --- the combination (tasks.traffic.combination, issue #13) ---------------------------------------


def test_weights_go_to_the_method_that_is_right_and_shrink_toward_equal() -> None:
    """Shrinkage spreads over the methods not clearly worse than the best: far worse ones get nothing."""
    rng = np.random.default_rng(0)
    truth = rng.uniform(100, 200, 500)
    noise = rng.normal(0, 1, 500)
    preds = np.column_stack([truth + noise, truth + 50, truth + 80])
    ones = np.ones(500)
    assert np.allclose(combination_weights(preds, truth, ones, shrinkage=0.0), [1, 0, 0])
    assert np.allclose(combination_weights(preds, truth, ones, shrinkage=0.3), [1, 0, 0])
    # the second method makes the first one's errors 15 % larger (mixing cannot help): it shares the shrinkage
    close = np.column_stack([truth + noise, truth + 1.15 * noise, truth + 80])
    assert np.allclose(combination_weights(close, truth, ones, shrinkage=0.3), [0.85, 0.15, 0])
    # all about as good: equal shrinkage, as before trimming
    alike = np.column_stack([truth + noise, truth + noise + 0.1, truth + noise - 0.1])
    assert combination_weights(alike, truth, ones, shrinkage=0.3).min() >= 0.1 - 1e-9
    assert np.allclose(combination_weights(preds, np.full(500, np.nan), ones, 0.3), [1 / 3] * 3)


def test_weights_average_two_unbiased_but_noisy_methods() -> None:
    """Two methods with independent errors of equal size: the mix beats both, so it gets about half each."""
    rng = np.random.default_rng(1)
    truth = rng.uniform(100, 200, 4000)
    preds = np.column_stack([truth + rng.normal(0, 10, 4000), truth + rng.normal(0, 10, 4000), truth + 300])
    weights = combination_weights(preds, truth, np.ones(4000), shrinkage=0.0)
    assert abs(weights[0] - 0.5) <= 0.15 and abs(weights[1] - 0.5) <= 0.15 and weights[2] == 0


def test_weights_are_scaled_per_series_so_a_big_road_does_not_decide_alone() -> None:
    """Road A (level 1000) is best served by method 0, road B (level 10) by method 1. Unscaled, A's
    errors swamp B's; divided by each road's naive error both count."""
    rng = np.random.default_rng(2)
    big, small = rng.uniform(900, 1100, 300), rng.uniform(9, 11, 300)
    preds = np.vstack(
        [
            np.column_stack([big + rng.normal(0, 5, 300), big + rng.normal(0, 20, 300), big + 400]),
            np.column_stack([small + 3, small + rng.normal(0, 0.05, 300), small + 4]),
        ]
    )
    truth = np.concatenate([big, small])
    unscaled = combination_weights(preds, truth, np.ones(600), shrinkage=0.0)
    scaled = combination_weights(preds, truth, np.repeat([20.0, 0.05], 300), shrinkage=0.0)
    assert unscaled[0] >= 0.9
    assert scaled[1] > unscaled[1] + 0.2


def test_own_weights_only_when_they_win_every_held_out_week() -> None:
    rng = np.random.default_rng(3)
    truth = rng.uniform(100, 200, 4 * 168)
    week = np.repeat(np.arange(4), 168)
    shared = np.array([0.8, 0.1, 0.1])
    # the daily naive is right every week for this road: own weights win all four held-out weeks
    preds = np.column_stack([truth + 30, truth + 60, truth + rng.normal(0, 1, len(truth))])
    own = series_weights_win(preds, truth, week, shared, shrinkage=0.3)
    assert own is not None and own[2] > 0.7
    # ... but if the model is the better one in one week, the evidence is not strong enough
    flipped = preds.copy()
    flipped[week == 2, 0] = truth[week == 2]
    flipped[week == 2, 2] = truth[week == 2] + 60
    assert series_weights_win(flipped, truth, week, shared, shrinkage=0.3) is None
    # and two weeks are never enough evidence
    assert series_weights_win(preds[week < 2], truth[week < 2], week[week < 2], shared, 0.3) is None


def test_conformal_bands_follow_each_block_and_borrow_when_a_cell_is_thin() -> None:
    rng = np.random.default_rng(4)
    n = 4000
    blocks = rng.integers(0, 4, n)
    cols = np.zeros(n, dtype=int)
    cols[:40] = 1  # series 1 has ~10 residuals per block: too few, borrows the block's quantiles
    residuals = rng.normal(0, 1, n) * (blocks + 1) * 0.1
    lo, hi = conformal_bands(residuals, cols, blocks, n_series=2, coverage=0.8)
    assert lo.shape == hi.shape == (4, 2)
    for b in range(4):
        expected = 1.2816 * (b + 1) * 0.1
        assert hi[b, 0] == pytest.approx(expected, rel=0.15)
        assert lo[b, 0] == pytest.approx(-expected, rel=0.15)
    inside = (residuals >= lo[blocks, cols]) & (residuals <= hi[blocks, cols])
    assert 0.77 <= inside.mean() <= 0.83
    rest = cols == 0
    assert np.allclose(
        hi[:, 1], [np.quantile(residuals[blocks == b], 0.9, method="linear") for b in range(4)], rtol=0.1
    )
    assert rest.sum() > 0


def test_backtest_origins_are_at_the_time_of_day_of_the_real_origin() -> None:
    series, _ = _series(days=80, n_series=2)
    frame = series.frame.iloc[:-5]  # the upload ends at 18:00, not midnight
    cut = TrafficSeries(frame=frame, time_column="time", interval=series.interval)
    grid = fc._build_grid(cut, ForecastConfig(holiday_country=None))
    pairs, origin_day = backtest_pairs(grid, 28)
    origin = pairs["target"].to_numpy() - pairs["step"].to_numpy()
    assert set(origin % 24) == {(grid.n_observed - 1) % 24}
    assert pairs["target"].max() < grid.n_observed
    assert origin_day.max() == 27 and len(origin_day) == len(pairs)
    assert set(pairs["step"]) == set(range(1, 25))


def test_weights_and_methods_are_reported() -> None:
    series, _ = _series(days=60, n_series=3, seed=6)
    result = forecast(series, FAST)
    assert result.info["backtest_origins"] == 15  # a quarter of the 60 days
    assert sum(result.info["weights"].values()) == pytest.approx(1.0)
    for metrics in result.metrics.values():
        assert metrics["method"].startswith(COMBINATION)
        assert sum(metrics["weights"].values()) == pytest.approx(1.0)
        assert set(metrics["candidates"]) == {MODEL, NAIVE_WEEKLY, NAIVE_DAILY, SEASONAL_MEDIAN}


def test_weighted_quantiles_match_plain_ones_and_follow_the_weights() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(0, 1, 20_000)
    lo, hi = weighted_quantiles(values, np.ones(len(values)), alpha=0.2)
    assert lo == pytest.approx(-1.2816, abs=0.05) and hi == pytest.approx(1.2816, abs=0.05)
    # all the weight on the second half, which is twice as spread: the quantiles are that half's
    spread = np.concatenate([values[:10_000], 2 * values[10_000:]])
    weights = np.r_[np.zeros(10_000), np.ones(10_000)]
    lo, hi = weighted_quantiles(spread, weights, alpha=0.2)
    assert hi == pytest.approx(2 * 1.2816, rel=0.06) and lo == pytest.approx(-2 * 1.2816, rel=0.06)


def test_bands_follow_the_recent_spread_of_the_errors() -> None:
    """28 backtest days whose error spread drifts: after calm days the bands are narrow, after rough days
    wide, each close to the recent days' quantiles; equal weights would give the same band for both."""
    rng = np.random.default_rng(9)
    origin_day = np.repeat(np.arange(28), 24)  # 0 = latest
    cols, blocks = np.zeros(len(origin_day), dtype=int), (np.tile(np.arange(24), 28) * 4) // 24
    noise = rng.normal(0, 1, len(origin_day))
    weights = band_weights(origin_day)
    assert weights[origin_day == 0][0] == 1.0 and weights[origin_day == 3][0] == pytest.approx(0.5)
    rough_recently = noise * np.where(origin_day < 7, 3.0, 1.0)
    calm_recently = noise * np.where(origin_day < 7, 1.0, 3.0)
    _, hi_rough = conformal_bands(rough_recently, cols, blocks, 1, 0.8, weights)
    _, hi_calm = conformal_bands(calm_recently, cols, blocks, 1, 0.8, weights)
    assert (hi_rough > 2 * hi_calm).all()
    assert np.median(hi_rough) == pytest.approx(3 * 1.2816, rel=0.35)
    assert np.median(hi_calm) == pytest.approx(1.2816, rel=0.35)
    _, equal_rough = conformal_bands(rough_recently, cols, blocks, 1, 0.8)
    _, equal_calm = conformal_bands(calm_recently, cols, blocks, 1, 0.8)
    assert np.allclose(np.median(equal_rough), np.median(equal_calm), rtol=0.5)


def _drifting_residuals(growth: float, days: int = 28, seed: int = 5) -> tuple[np.ndarray, ...]:
    """`days` backtest days of 24 hourly residuals (origin 0 = latest) whose spread grows by `growth` per
    day toward the present."""
    rng = np.random.default_rng(seed)
    origin_day = np.repeat(np.arange(days), 24)
    spread = (1 + growth) ** (days - 1 - origin_day)
    residuals = rng.normal(0, 1, len(origin_day)) * spread
    blocks = (np.tile(np.arange(24), days) * 4) // 24
    return residuals, np.zeros(len(origin_day), dtype=int), blocks, origin_day


def test_calibrated_level_is_about_the_target_when_days_are_alike_and_higher_when_errors_grow() -> None:
    """Exchangeable days: the rolling check finds about the target level itself. Errors that grow 10 %
    a day: bands from past days cover less than their level, so the level found is higher; the sign and
    size of the gap are measured, not assumed."""
    target = 0.8 + CALIBRATION_OFFSET
    alike = [
        calibrated_level(*_drifting_residuals(0.0, seed=seed), n_series=1, coverage=0.8) for seed in range(5)
    ]
    assert np.mean(alike) == pytest.approx(target, abs=0.03)
    growing = [
        calibrated_level(*_drifting_residuals(0.10, seed=seed), n_series=1, coverage=0.8) for seed in range(5)
    ]
    assert np.mean(growing) > np.mean(alike) + 0.04
    # the level found does cover the target on the checked days when rebuilt the same way
    residuals, cols, blocks, origin_day = _drifting_residuals(0.10)
    level = calibrated_level(residuals, cols, blocks, origin_day, 1, 0.8)
    hits = []
    for j in range(14):
        past = origin_day > j
        lo, hi = conformal_bands(
            residuals[past], cols[past], blocks[past], 1, level, band_weights(origin_day[past] - j - 1)
        )
        r, b = residuals[origin_day == j], blocks[origin_day == j]
        hits.append(((r >= lo[b, 0]) & (r <= hi[b, 0])).mean())
    assert np.average(hits, weights=0.5 ** (np.arange(14) / 3)) >= target


def test_calibrated_level_falls_back_to_the_fixed_margin_on_a_short_backtest() -> None:
    residuals, cols, blocks, origin_day = _drifting_residuals(0.0, days=7)
    assert calibrated_level(residuals, cols, blocks, origin_day, 1, 0.8) == pytest.approx(
        0.8 + FALLBACK_LEVEL_MARGIN
    )


def test_holiday_widening_is_shrunk_toward_one_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The naive's holiday error ratio overstates what the combination needs (PeMS Thanksgiving week
    covered 98.8 % with it): the bands use its square root, at most HOLIDAY_WIDENING_CAP."""
    series, _ = _series(days=60, n_series=2, seed=11)
    for measured, used in ((1.44, 1.2), (9.0, HOLIDAY_WIDENING_CAP)):
        monkeypatch.setattr(combination, "holiday_widening", lambda grid, level, m=measured: m)
        result = forecast(series, FAST)
        assert result.info["holiday_widening"] == pytest.approx(used)
        assert 0.8 <= result.info["band_quantile_level"] <= 0.99


@pytest.mark.parametrize(("holiday_noise", "low", "high"), [(0.0, 1.0, 1.25), (0.5, 1.6, 3.0)])
def test_bands_widen_around_holidays_as_much_as_past_holidays_were_harder(
    holiday_noise: float, low: float, high: float
) -> None:
    """A year of flow with US holidays (traffic like a weekend) whose level swings by `holiday_noise`
    (log sd) on the holiday and the days around it: the widening
    measured on the history follows it, and stays about 1 when holidays are ordinary days."""
    index = pd.date_range("2023-01-01", "2023-12-31 23:00", freq="h", name="time")
    calendar = holidays.country_holidays("US", years=2023)
    dates = index.normalize()
    affected = (
        dates.isin(pd.DatetimeIndex(list(calendar)))
        | (dates - pd.Timedelta(days=1)).isin(pd.DatetimeIndex(list(calendar)))
        | (dates + pd.Timedelta(days=1)).isin(pd.DatetimeIndex(list(calendar)))
    )
    rng = np.random.default_rng(8)
    day_swing = (
        pd.Series(rng.lognormal(0, holiday_noise, len(index)), index=index).groupby(dates).transform("first")
    )
    working = (index.day_of_week < 5) & ~dates.isin(pd.DatetimeIndex(list(calendar)))
    values = _shape(index, working) * rng.lognormal(0, 0.05, len(index)) * np.where(affected, day_swing, 1.0)
    series = TrafficSeries(
        frame=pd.DataFrame({"road": values}, index=index), time_column="time", interval=pd.Timedelta(hours=1)
    )
    grid = fc._build_grid(series, ForecastConfig(holiday_country="US"))
    widening = holiday_widening(grid, fc._scale(grid, grid.n_observed))
    assert low <= widening <= high, widening


def test_seasonal_median_skips_holidays_and_outliers_and_defers_to_the_model_around_holidays() -> None:
    """Monday 10 June 2024 from the Mondays before it: 3 June is an outlier (1000), 27 May is Memorial Day
    (skipped), 20 and 13 May are ordinary (130, 120): the median is 130 where the weekly naive says 1000.
    On Memorial Day itself the member is the model's forecast."""
    index = pd.date_range("2024-04-29", "2024-06-09 23:00", freq="h", name="time")
    values = 100.0 + 10.0 * ((index - index[0]).days // 7).to_numpy()
    values[index.normalize() == pd.Timestamp("2024-06-03")] = 1000.0
    frame = pd.DataFrame({"road": values}, index=index)
    config = ForecastConfig(holiday_country="US")

    def member(end: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        series = TrafficSeries(frame=frame.loc[:end], time_column="time", interval=pd.Timedelta(hours=1))
        grid = fc._build_grid(series, config)
        future = fc._future_pairs(grid)
        model = np.arange(len(future), dtype="float64")
        weekly, _ = combination.calendar_naives(grid, future)
        return combination.seasonal_median(grid, future, model, weekly), model, weekly

    median, _, weekly = member("2024-06-09 23:00")
    assert np.all(weekly == 1000.0)
    assert np.all(median == 130.0)
    holiday, model, _ = member("2024-05-26 23:00")
    assert np.array_equal(holiday, model)


WORKED = ("Columbus Day", "Veterans Day")


@pytest.fixture(scope="module")
def us_roads() -> pd.Series:
    """Two years of hourly flow where the US calendar's Columbus and Veterans Day are ordinary working
    days (as on Minnesota's I-94) and every other federal holiday is a day off with weekend traffic."""
    calendar = holidays.US(years=range(2022, 2025))
    index = pd.date_range("2022-09-01", "2024-10-20 23:00", freq="h", name="time")
    days_off = pd.DatetimeIndex([d for d, name in calendar.items() if not name.startswith(WORKED)])
    working = (index.day_of_week < 5) & ~index.normalize().isin(days_off)
    rng = np.random.default_rng(11)
    return pd.Series(_shape(index, working) * rng.lognormal(0, 0.05, len(index)), index=index, name="road")


def _grid_before(flow: pd.Series, day: str, config: ForecastConfig) -> fc._Grid:
    observed = flow[: pd.Timestamp(day) - pd.Timedelta(hours=1)].to_frame().asfreq("h")
    series = TrafficSeries(frame=observed, time_column="time", interval=pd.Timedelta(hours=1))
    return fc._build_grid(series, config)


LEARN = ForecastConfig(horizon=24, holiday_country="US", learn_holidays=True)


def test_a_holiday_the_roads_work_through_counts_as_a_working_day(us_roads: pd.Series) -> None:
    grid = _grid_before(us_roads, "2024-10-14", LEARN)
    columbus = grid.calendar.iloc[grid.n_observed :]  # the forecast day, Columbus Day 2024
    assert (columbus["holiday"] == 0).all() and (columbus["working_day"] == 1).all()
    labor_day = grid.times.normalize() == pd.Timestamp("2024-09-02")
    assert (grid.calendar.loc[labor_day, "holiday"] == 1).all()
    assert (grid.calendar.loc[labor_day, "working_day"] == 0).all()
    # on by default; switched off, the calendar's word stands
    default = _grid_before(us_roads, "2024-10-14", ForecastConfig(horizon=24, holiday_country="US"))
    assert (default.calendar.iloc[default.n_observed :]["holiday"] == 0).all()
    off = ForecastConfig(horizon=24, holiday_country="US", learn_holidays=False)
    calendar_only = _grid_before(us_roads, "2024-10-14", off)
    assert (calendar_only.calendar.iloc[calendar_only.n_observed :]["holiday"] == 1).all()


def test_forecast_of_a_worked_holiday_follows_the_roads_not_the_calendar(
    us_roads: pd.Series, monkeypatch: pytest.MonkeyPatch
) -> None:
    def error(flow: pd.Series) -> tuple[float, dict[str, object]]:
        """Mean absolute error on Columbus Day 2024 and the forecast's info."""
        observed = flow[: pd.Timestamp("2024-10-13 23:00")].to_frame().asfreq("h")
        series = TrafficSeries(frame=observed, time_column="time", interval=pd.Timedelta(hours=1))
        config = ForecastConfig(holiday_country="US", boosting_rounds=60, learn_holidays=True)
        result = forecast(series, config)
        point = result.point["road"].to_numpy()
        return float(np.abs(point - flow["2024-10-14"].to_numpy()).mean()), result.info

    learned, info = error(us_roads)
    assert info["worked_holidays"] == list(WORKED)  # the job logs them (flows/traffic/forecast.py)
    monkeypatch.setattr(fc, "_worked_holidays", lambda days, *args: np.zeros(len(days), dtype=bool))
    calendar_only, _ = error(us_roads)
    assert learned < 0.5 * calendar_only


def test_a_holiday_never_observed_or_a_close_call_keeps_the_calendar(us_roads: pd.Series) -> None:
    config = LEARN
    # history from 2024-07-01 on: no Columbus Day in it, so the calendar's word stands
    grid = _grid_before(us_roads["2024-07-01":], "2024-10-14", config)
    assert (grid.calendar.iloc[grid.n_observed :]["holiday"] == 1).all()
    # Labor Day a bit closer to a working day than to a weekend day (60/40): no clear evidence
    index = us_roads.index
    labor = index.normalize().isin(pd.to_datetime(["2023-09-04", "2024-09-02"]))
    work, off = (_shape(index, np.full(len(index), kind)) for kind in (True, False))
    halfway = np.where(labor, 0.6 * work + 0.4 * off, us_roads)
    grid = _grid_before(pd.Series(halfway, index=index, name="road"), "2024-10-14", config)
    labor_day = grid.times.normalize() == pd.Timestamp("2024-09-02")
    assert (grid.calendar.loc[labor_day, "holiday"] == 1).all()
