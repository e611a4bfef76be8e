"""Global model combined with the seasonal naives, with conformal bands per horizon block.

Why this shape (issue #13): choosing one method per series on one backtest week over-fitted that week: on
held-out road, bike and freeway series the choice was often wrong for the next seven days. What held up
across data sets is averaging, with weights that several backtest weeks agree on:

- one global gradient-boosting model, direct multi-step (the step ahead is a feature and every lag is at
  least the step back, so no forecast is fed back), correcting a calendar-aware weekly naive;
- combined with the weekly and daily seasonal naives (calendar-aware too) and the median of the last four
  same-kind weekdays (`seasonal_median`, a member unlike the others), weights chosen on the pooled,
  naive-scaled backtest error of all series over `backtest_weeks` weeks of daily origins and shrunk
  toward equal weights over the methods not clearly worse than the best one (so a lucky month cannot put
  everything on one method, and a method with far larger errors is not forced back in);
- a series gets its own weights only when they win every held-out week of a leave-one-week-out check;
- bands: recency-weighted quantiles of the combination's backtest residuals (relative to the forecast
  level) per series and horizon block, at a quantile level that a rolling check on the last two backtest
  weeks found to cover the nominal level there, somewhat wider around holidays (see `interval_bands`).

Two fits per forecast: one ending before the backtest weeks (for the weights and the bands), and the
final one on all data with the boosting rounds that early stopping found in the first (no second search).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import product

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

from tasks.traffic import forecasting as fc
from tasks.traffic.data import TrafficSeries

COMBINATION = "combination"
SEASONAL_MEDIAN = "seasonal_median"
# Column order of every candidate matrix below (`candidates`).
METHODS = (fc.MODEL, fc.NAIVE_WEEKLY, fc.NAIVE_DAILY, SEASONAL_MEDIAN)
# The seasonal median looks this many weeks back.
MEDIAN_WEEKS = 4
BLOCKS = 4
WEIGHT_STEP = 0.05
# A method whose own backtest error exceeds the best method's by more than this factor gets no share of
# the shrinkage: equal weights put 10 % on the daily naive of a freeway sensor whose error was 1.6x the
# weekly naive's, which cost a week 1.02x the better naive (bench/results/traffic_accuracy.md).
TRIM_FACTOR = 1.25
# Bands (see `interval_bands`): backtest residuals weigh half as much for every BAND_HALF_LIFE_DAYS days
# their origin lies before the latest one; the quantile level is measured per forecast by a rolling check
# over the last CALIBRATION_DAYS backtest days (`calibrated_level`), aiming CALIBRATION_OFFSET above the
# nominal level; holiday bands widen by the square root of the measured holiday factor, at most
# HOLIDAY_WIDENING_CAP. The offset is the one setting fitted on results: with the seasonal median among the
# members it puts the mean coverage of the twenty-four windows scored up to 2026-12-03 at 80.0 % (every
# week 75.0-84.5 %, bench/traffic_study.py); six weeks fixed before that choice check it
# (bench/results/traffic_accuracy.md, "fourth held-out").
BAND_HALF_LIFE_DAYS = 3.0
CALIBRATION_DAYS = 14
CALIBRATION_OFFSET = 0.02
# Used when the backtest is too short for the rolling check (under CALIBRATION_MIN_PAST + 1 days): the
# margin the fixed-level bands needed on the first six benchmark weeks.
FALLBACK_LEVEL_MARGIN = 0.10
CALIBRATION_MIN_PAST = 7
MAX_BAND_LEVEL = 0.99
HOLIDAY_WIDENING_CAP = 1.5
# Each training target is seen at this many random steps ahead: enough to learn the step feature.
STEPS_PER_TARGET = 2
# Row cap of one fit: 21 series x 2 years would be 740k rows; 150k rows lose no accuracy and keep a
# fit of 21 series within a few seconds.
MAX_TRAIN_ROWS = 150_000
# Boosting rounds of one fit at most (early stopping usually ends sooner): beyond it the 21 x 2 years
# forecast leaves its 30 s budget for no measurable gain.
MAX_ROUNDS = 200


@dataclass(frozen=True)
class DirectModel:
    """A fitted direct multi-step model (step ahead as a feature, lags at least the step back)."""

    estimator: HistGradientBoostingRegressor
    scale: np.ndarray
    constant_columns: list[str]
    seconds: float

    def predict(self, grid: fc._Grid, pairs: pd.DataFrame) -> np.ndarray:
        base, delta = self.correction(grid, pairs)
        return np.maximum(base + delta, 0.0) * self.scale[pairs["series"].to_numpy()]

    def correction(self, grid: fc._Grid, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(baseline, the booster's correction to it) for `pairs`, both on the scaled level; a study of
        another target transform (bench/traffic_model_study.py) combines them its own way."""
        X, base = fc._features(grid, pairs, grid.values / self.scale)
        X[self.constant_columns] = 0.0
        with fc.single_thread():
            return base, self.estimator.predict(X.astype("float32"))


@dataclass(frozen=True)
class TrainingRows:
    """What one fit learns from: features, the target (scaled), the baseline it corrects, the grid row of
    each target and the per-series scale. Separate from the booster so a study
    (bench/traffic_model_study.py) can vary the fit without a second copy of the sampling."""

    X: pd.DataFrame
    y: np.ndarray
    base: np.ndarray
    targets: np.ndarray
    scale: np.ndarray
    constant_columns: list[str]


def training_rows(grid: fc._Grid, end: int, config: fc.ForecastConfig) -> TrainingRows:
    """Training rows on targets before `end` only: every target at STEPS_PER_TARGET random steps ahead,
    at most MAX_TRAIN_ROWS of them (a random subset), columns without information zeroed."""
    scale = fc._scale(grid, end)
    scaled = grid.values / scale
    scaled[end:] = np.nan
    n_series = grid.values.shape[1]
    rng = np.random.default_rng(config.seed)
    first = min(end - 1, grid.day)
    targets = np.repeat(np.arange(first, end), n_series * STEPS_PER_TARGET)
    cols = np.tile(np.repeat(np.arange(n_series), STEPS_PER_TARGET), end - first)
    ok = ~np.isnan(scaled[targets, cols])
    targets, cols = targets[ok], cols[ok]
    cap = min(config.max_train_rows, MAX_TRAIN_ROWS)
    if len(targets) > cap:
        keep = np.sort(rng.choice(len(targets), cap, replace=False))
        targets, cols = targets[keep], cols[keep]
    steps = rng.integers(1, grid.horizon + 1, len(targets))
    pairs = pd.DataFrame({"target": targets, "step": steps, "series": cols})
    X, base = fc._features(grid, pairs, scaled)
    constant = [str(c) for c in X.columns[X.isna().all() | (X.nunique() <= 1)] if c != "series"]
    X[constant] = 0.0
    return TrainingRows(X, scaled[targets, cols], base, targets, scale, constant)


def booster(
    config: fc.ForecastConfig, n_rows: int, n_series: int, rounds: int | None = None
) -> HistGradientBoostingRegressor:
    """The model's settings. `rounds=None` searches the rounds by early stopping on a held-out tenth
    (when there are 2000 rows or more); a number reuses what an earlier search found."""
    search = rounds is None and n_rows >= 2000
    return HistGradientBoostingRegressor(
        loss="absolute_error",
        learning_rate=0.15,
        max_iter=min(config.boosting_rounds, MAX_ROUNDS) if rounds is None else max(1, rounds),
        max_leaf_nodes=31,
        min_samples_leaf=40,
        l2_regularization=1.0,
        categorical_features=[0] if n_series <= 255 else None,
        early_stopping=search,
        validation_fraction=0.1 if search else None,
        n_iter_no_change=15,
        random_state=config.seed,
    )


def fit_direct(grid: fc._Grid, end: int, config: fc.ForecastConfig, rounds: int | None = None) -> DirectModel:
    """Fit on targets before `end` only. `rounds=None` searches the rounds by early stopping on a held-out
    tenth; a number reuses what an earlier search found (the final fit on all data)."""
    started = time.perf_counter()
    rows = training_rows(grid, end, config)
    estimator = booster(config, len(rows.y), grid.values.shape[1], rounds)
    with fc.single_thread():
        estimator.fit(rows.X.astype("float32"), (rows.y - rows.base).astype("float32"))
    return DirectModel(estimator, rows.scale, rows.constant_columns, time.perf_counter() - started)


def simplex_grid(n: int, step: float = WEIGHT_STEP) -> np.ndarray:
    """All weight vectors of length `n` on a `step` lattice of the simplex, one per row."""
    ticks = round(1 / step)
    rows = [c for c in product(range(ticks + 1), repeat=n - 1) if sum(c) <= ticks]
    return np.array([[*c, ticks - sum(c)] for c in rows], dtype="float64") / ticks


def combination_weights(
    preds: np.ndarray, actual: np.ndarray, scale: np.ndarray, shrinkage: float
) -> np.ndarray:
    """Weights minimising the scaled MAE of `preds @ w` on the simplex, shrunk toward equal weights over
    the methods whose own scaled MAE is within TRIM_FACTOR of the best method's (trimmed averaging).

    `scale` divides each row's error (the series' naive MAE) so big roads do not decide alone; rows with
    a missing truth are ignored. Without any usable row the weights are equal.
    """
    n = preds.shape[1]
    equal = np.full(n, 1 / n)
    ok = ~np.isnan(actual) & ~np.isnan(preds).any(axis=1) & (scale > 0)
    if not ok.any():
        return equal
    lattice = simplex_grid(n)
    p, a, sc = preds[ok], actual[ok, None], scale[ok, None]
    # in slices of the lattice: 21 series x 4 weeks x 1771 weight vectors would be 200 MB at once
    errors = np.concatenate(
        [
            (np.abs(p @ part.T - a) / sc).mean(axis=0)
            for part in np.array_split(lattice, -(-len(lattice) // 256))
        ]
    )
    best = lattice[int(np.argmin(errors))]
    own = (np.abs(preds[ok] - actual[ok, None]) / scale[ok, None]).mean(axis=0)
    kept = own <= TRIM_FACTOR * own.min()
    return (1 - shrinkage) * best + shrinkage * kept / kept.sum()


def series_weights_win(
    preds: np.ndarray, actual: np.ndarray, week: np.ndarray, shared: np.ndarray, shrinkage: float
) -> np.ndarray | None:
    """A series' own weights, but only if they beat the shared ones on every held-out backtest week.

    Leave-one-week-out: for each week, weights fitted on the other weeks are scored on it. Returns the
    weights fitted on all weeks when they won every week, otherwise None (keep the shared weights).
    """
    weeks = np.unique(week[~np.isnan(actual)])
    if len(weeks) < 3:
        return None
    ones = np.ones(len(actual))
    for held in weeks:
        train, test = (week != held), (week == held) & ~np.isnan(actual)
        own = combination_weights(preds[train], actual[train], ones[train], shrinkage)
        own_error = np.abs(preds[test] @ own - actual[test]).mean()
        if not own_error < np.abs(preds[test] @ shared - actual[test]).mean():
            return None
    return combination_weights(preds, actual, ones, shrinkage)


def conformal_bands(
    residuals: np.ndarray,
    cols: np.ndarray,
    blocks: np.ndarray,
    n_series: int,
    coverage: float,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) relative quantiles per (horizon block, series), shape (blocks, n_series).

    With `weights`, weighted quantiles (recent residuals count more); without, the split-conformal ones.
    Cells with fewer than `MIN_RESIDUALS_PER_STEP` residuals borrow the block's quantiles over all series,
    and those the quantiles of everything (0 when there is nothing: a band of zero width).
    """
    alpha = 1 - coverage
    ok = ~np.isnan(residuals)
    w = np.ones(len(residuals)) if weights is None else np.asarray(weights, dtype="float64")
    r, b_, s_, w = residuals[ok], blocks[ok], cols[ok], w[ok]

    def quantiles(mask: np.ndarray) -> tuple[float, float]:
        if weights is None:
            return fc._quantiles(r[mask], alpha)
        return weighted_quantiles(r[mask], w[mask], alpha)

    everything = quantiles(np.ones(len(r), dtype=bool)) if len(r) else (0.0, 0.0)
    lo = np.full((BLOCKS, n_series), everything[0])
    hi = np.full((BLOCKS, n_series), everything[1])
    for b in np.unique(b_):
        in_block = b_ == b
        if in_block.sum() >= fc.MIN_RESIDUALS_PER_STEP:
            lo[b, :], hi[b, :] = quantiles(in_block)
        for s in np.unique(s_[in_block]):
            cell = in_block & (s_ == s)
            if cell.sum() >= fc.MIN_RESIDUALS_PER_STEP:
                lo[b, s], hi[b, s] = quantiles(cell)
    return np.minimum(lo, 0.0), np.maximum(hi, 0.0)


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, alpha: float) -> tuple[float, float]:
    """Equal-tailed (alpha/2, 1 - alpha/2) quantiles of `values` under `weights` (the inverse of the
    weighted empirical distribution, no interpolation)."""
    order = np.argsort(values)
    v, c = values[order], np.cumsum(weights[order])
    c = c / c[-1]
    last = len(v) - 1
    return (
        float(v[min(int(np.searchsorted(c, alpha / 2)), last)]),
        float(v[min(int(np.searchsorted(c, 1 - alpha / 2)), last)]),
    )


def band_weights(origin_day: np.ndarray, half_life: float = BAND_HALF_LIFE_DAYS) -> np.ndarray:
    """Weight of each backtest residual by the age of its origin (0 = latest): halves every `half_life` days.

    Why: the spread of traffic errors drifts from week to week (PeMS occupancy: 0.07 one week, 0.3 a few
    weeks later); equal weights over four weeks gave a freeway week 68 % coverage after calm weeks and
    99 % after rough ones. The recent days say best how rough the next day will be.
    """
    return 0.5 ** (np.asarray(origin_day, dtype="float64") / half_life)


def forecast_combined(
    series: TrafficSeries, config: fc.ForecastConfig, progress: fc.Progress
) -> fc.ForecastResult:
    """See the module docstring. Series with under `min_model_history_days` of history never use the
    model: they get the naive (weekly or daily) with the lower backtest error."""
    started = time.perf_counter()
    progress(0.0, "prepare")
    grid = fc._build_grid(series, config)
    n_obs, n_series, day = grid.n_observed, grid.values.shape[1], grid.day
    history = fc._history_steps(grid)
    has_model = history >= config.min_model_history_days * day
    # at most a quarter of the history (at least a week) is held out, so the backtest fit keeps most data
    days = min(config.backtest_weeks * 7, max(7, n_obs // day // 4))
    pairs, origin_day = backtest_pairs(grid, days)
    bt_start = int(pairs["target"].min() - pairs["step"].min() + 1) if len(pairs) else n_obs
    use_model = bool(has_model.any()) and bt_start >= 2 * grid.week
    targets, cols, steps = (pairs[k].to_numpy() for k in ("target", "series", "step"))
    actual = grid.values[targets, cols]
    model = np.full(len(targets), np.nan)
    fit_seconds, rounds = 0.0, None
    if use_model:
        progress(0.1, "backtest fit")
        fitted = fit_direct(grid, bt_start, config)
        fit_seconds += fitted.seconds
        rounds = int(fitted.estimator.n_iter_)
        progress(0.45, "backtest")
        model = np.where(has_model[cols], fitted.predict(grid, pairs), np.nan)
    preds = candidates(grid, pairs, model)

    progress(0.5, "weights")
    naive_scale = fc._naive_mae(grid.values[:bt_start], day)
    naive_scale = np.where(np.isfinite(naive_scale) & (naive_scale > 0), naive_scale, 1.0)
    shared, weights, methods = point_weights(
        preds, actual, cols, origin_day, naive_scale, has_model & use_model, config.shrinkage
    )
    combined = np.nansum(preds * weights[cols], axis=1)
    metrics = _metrics(series, preds, combined, actual, cols, naive_scale, weights, methods, history)

    future = fc._future_pairs(grid)
    f_cols = future["series"].to_numpy()
    future_model = np.zeros(len(future))
    if use_model and (weights[:, [0, 3]] > 0).any():  # the median defers to the model around holidays
        progress(0.55, "final fit")
        final = fit_direct(grid, n_obs, config, rounds=rounds)
        fit_seconds += final.seconds
        future_model = final.predict(grid, future)
    out = candidates(grid, future, future_model)
    point = np.maximum((out * weights[f_cols]).sum(axis=1), 0.0)

    progress(0.95, "intervals")
    lower, upper, band_level, widening = interval_bands(
        grid, actual, combined, cols, steps, origin_day, point, future, config.interval_level
    )

    shape = (grid.horizon, n_series)
    times = series.format_times(grid.times[n_obs:])
    point_frame = pd.DataFrame(
        {series.time_column: times, **dict(zip(series.columns, point.reshape(shape).T, strict=True))}
    )
    bounds = pd.DataFrame({series.time_column: times})
    for i, column in enumerate(series.columns):
        bounds[f"{column}_lower"] = lower.reshape(shape)[:, i]
        bounds[f"{column}_upper"] = upper.reshape(shape)[:, i]
    info = {
        "horizon": grid.horizon,
        "interval_level": config.interval_level,
        "band_quantile_level": round(band_level, 3),
        "holiday_widening": round(widening, 3),
        "holiday_country": config.holiday_country,
        "worked_holidays": grid.calendar.attrs.get("worked_holidays", []),
        "backtest_start": grid.times[min(bt_start, n_obs - 1)].isoformat(),
        "backtest_origins": int(origin_day.max() + 1) if len(origin_day) else 0,
        "weights": dict(zip(METHODS, (round(float(w), 4) for w in shared), strict=True)),
        "boosting_rounds": rounds,
        "fit_seconds": round(fit_seconds, 3),
        "total_seconds": round(time.perf_counter() - started, 3),
    }
    progress(1.0, "done")
    return fc.ForecastResult(point=point_frame, bounds=bounds, metrics=metrics, info=info)


def point_weights(
    preds: np.ndarray,
    actual: np.ndarray,
    cols: np.ndarray,
    origin_day: np.ndarray,
    naive_scale: np.ndarray,
    has_model: np.ndarray,
    shrinkage: float,
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """(shared weights, weights per series (n_series, len(METHODS)), method per series) from the backtest.

    Series with the model share one weight vector unless their own win every held-out week
    (`series_weights_win`); series without it get the naive (weekly or daily) with the lower backtest
    error. A separate step so weighting variants can be studied on recorded backtests
    (bench/traffic_study.py)."""
    n_series = len(has_model)
    week_of = origin_day // 7
    model_rows = has_model[cols]
    shared = np.zeros(len(METHODS))
    if has_model.any():
        shared = combination_weights(
            preds[model_rows], actual[model_rows], naive_scale[cols[model_rows]], shrinkage
        )
    weights = np.zeros((n_series, len(METHODS)))
    methods: dict[int, str] = {}
    for i in range(n_series):
        rows = cols == i
        if has_model[i]:
            own = series_weights_win(preds[rows], actual[rows], week_of[rows], shared, shrinkage)
            weights[i] = shared if own is None else own
            methods[i] = COMBINATION if own is None else f"{COMBINATION} (own weights)"
        else:
            truth = actual[rows]
            ok = ~np.isnan(truth)
            errors = [np.abs(truth[ok] - preds[rows][ok, j]).mean() if ok.any() else np.inf for j in (1, 2)]
            j = 2 if errors[1] < errors[0] else 1
            weights[i, j] = 1.0
            methods[i] = METHODS[j]
    return shared, weights, methods


def interval_bands(
    grid: fc._Grid,
    actual: np.ndarray,
    combined: np.ndarray,
    cols: np.ndarray,
    steps: np.ndarray,
    origin_day: np.ndarray,
    point: np.ndarray,
    future: pd.DataFrame,
    coverage: float,
    *,
    day_half_life: float = BAND_HALF_LIFE_DAYS,
    widening_cap: float = HOLIDAY_WIDENING_CAP,
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(lower, upper) of the future rows, the quantile level used and the holiday widening factor.

    Quantiles of the backtest residuals (relative to the forecast level) per series and horizon block,
    recency-weighted (`band_weights`), at the level `calibrated_level` measures: the next day is not
    exchangeable with the backtest days (weather, events, drifting spread), so nominal-level quantiles
    cover less than nominal (64-76 % on the first six benchmark weeks), by an amount that differs from
    series to series; a fixed margin fitted on some weeks over-covered others (88 % on held-out weeks).
    Holiday-affected hours widen by the square root of `holiday_widening`, at most
    `HOLIDAY_WIDENING_CAP`: the naive's holiday error ratio (1.0-2.1 on the benchmark sets) overstated what
    the combination needs (PeMS Thanksgiving week covered 98.8 % with the full factor). A separate step so
    the bands can be studied on recorded backtests (bench/traffic_study.py): its band variants set the
    keywords, the calibration's day half-life and the cap of the holiday widening."""
    n_series = grid.values.shape[1]
    level = fc._scale(grid, grid.n_observed)
    spread_bt = np.maximum(combined, 0.0) + 0.1 * level[cols]
    residuals, blocks = (actual - combined) / spread_bt, _block(steps, grid.horizon)
    band_level = calibrated_level(residuals, cols, blocks, origin_day, n_series, coverage, day_half_life)
    lo, hi = conformal_bands(residuals, cols, blocks, n_series, band_level, band_weights(origin_day))
    f_cols = future["series"].to_numpy()
    block = _block(future["step"].to_numpy(), grid.horizon)
    widening = min(float(np.sqrt(holiday_widening(grid, level))), widening_cap)
    widen = np.where(_holiday_affected(grid)[future["target"].to_numpy()], widening, 1.0)
    lo, hi = lo[block, f_cols] * widen, hi[block, f_cols] * widen
    spread = point + 0.1 * level[f_cols]
    lower = np.clip(point + lo * spread, 0.0, point)
    upper = np.maximum(point + hi * spread, point)
    return lower, upper, band_level, widening


def calibrated_level(
    residuals: np.ndarray,
    cols: np.ndarray,
    blocks: np.ndarray,
    origin_day: np.ndarray,
    n_series: int,
    coverage: float,
    day_half_life: float = BAND_HALF_LIFE_DAYS,
) -> float:
    """The quantile level whose bands covered `coverage` + CALIBRATION_OFFSET on the latest backtest days.

    Rolling, as the forecast itself runs: each of the last CALIBRATION_DAYS backtest days is scored with
    bands built only from the days before it (recency-weighted from that day on), and the days' hits
    count half as much for every `day_half_life` days back. The smallest level on a 0.01 lattice
    between `coverage` and MAX_BAND_LEVEL that reaches the target wins (coverage grows with the level, so
    bisection). The offset makes up for the backtest being in-sample for the combination weights.
    Too short a backtest for the check: the nominal level plus FALLBACK_LEVEL_MARGIN.
    """
    levels = np.round(np.arange(coverage, MAX_BAND_LEVEL + 1e-9, 0.01), 2)
    last = int(origin_day.max()) if len(origin_day) else -1
    # per checked day: its calibration residuals (cells, recency weights from that day on), its own
    # residuals and the day's weight; sliced once, the bisection below rescores them at several levels
    checks = []
    for j in range(min(CALIBRATION_DAYS, last - CALIBRATION_MIN_PAST + 1)):
        past, test = origin_day > j, (origin_day == j) & ~np.isnan(residuals)
        if test.any():
            calibration = (residuals[past], cols[past], blocks[past], band_weights(origin_day[past] - j - 1))
            weight = float(band_weights(j, day_half_life))
            checks.append((calibration, (residuals[test], blocks[test], cols[test]), weight))
    if not checks or not len(levels):
        return min(coverage + FALLBACK_LEVEL_MARGIN, MAX_BAND_LEVEL)
    target = coverage + CALIBRATION_OFFSET

    def covered(level: float) -> float:
        hits = total = 0.0
        for (r_past, c_past, b_past, weights), (r, b, s), weight in checks:
            lo, hi = conformal_bands(r_past, c_past, b_past, n_series, level, weights)
            hits += weight * ((r >= lo[b, s]) & (r <= hi[b, s])).sum()
            total += weight * len(r)
        return hits / total

    low, high = 0, len(levels) - 1
    if covered(float(levels[high])) < target:
        return float(levels[high])
    while low < high:  # smallest index whose coverage reaches the target
        middle = (low + high) // 2
        low, high = (middle + 1, high) if covered(float(levels[middle])) < target else (low, middle)
    return float(levels[low])


def candidates(grid: fc._Grid, pairs: pd.DataFrame, model: np.ndarray) -> np.ndarray:
    """The combination's members for `pairs`, one column each in METHODS order, from the model's
    predictions (NaN where a series has none): the model, the calendar-aware naives, the seasonal median."""
    weekly, daily = calendar_naives(grid, pairs)
    return np.column_stack([model, weekly, daily, seasonal_median(grid, pairs, model, weekly)])


def seasonal_median(grid: fc._Grid, pairs: pd.DataFrame, model: np.ndarray, weekly: np.ndarray) -> np.ndarray:
    """Median of the same hour on the same weekday over the last MEDIAN_WEEKS weeks, counting only days of
    the target's kind (working or not) that were no holiday; the model's forecast on holiday-affected days.

    Why: one week's value carries that week's weather and incidents; the median of four is the
    practitioner's "historical average" without its outliers, and a member unlike the others lowers the
    combination's error where the weekly naive is noisy (freeway occupancy 0.97x to 0.51x the better naive,
    bench/traffic_study.py). It knows no holidays, so around them it defers to the model, which does.
    Where no such day is in reach, `weekly` (the calendar-aware weekly naive of `pairs`).
    """
    target, step, col = (pairs[k].to_numpy() for k in ("target", "step", "series"))
    k_week = grid.week * np.ceil(step / grid.week).astype(int)
    holiday = grid.calendar["holiday"].to_numpy()
    working = grid.calendar["working_day"].to_numpy()
    lags = []
    for j in range(MEDIAN_WEEKS):
        row = target - k_week - j * grid.week
        back = np.maximum(row, 0)
        usable = (row >= 0) & (working[back] == working[target]) & (holiday[back] == 0)
        lags.append(np.where(usable, fc._take(grid.values, row, col), np.nan))
    with fc._quiet():
        median = np.nanmedian(np.column_stack(lags), axis=1)
    median = np.where(np.isnan(median), weekly, median)
    return np.where(_holiday_affected(grid)[target], model, median)


def calendar_naives(grid: fc._Grid, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Weekly and daily seasonal naive that respect the calendar: the value a week (a day) back, unless
    that day differs in kind from the target day (working vs weekend/holiday), then the latest day of the
    same kind. A plain daily naive forecasts Monday from Sunday; even a small weight on it cost more than
    the combination gained. Where the lags fall into gaps, the plain naives (which skip back over gaps).
    """
    X, weekly = fc._features(grid, pairs, grid.values)
    lags = X[["lag_week", "lag_week2", "lag_day", "lag_same_kind"]].to_numpy()
    weekly = np.where(np.isnan(lags[:, :3]).all(axis=1), np.nan, weekly)
    target, step = pairs["target"].to_numpy(), pairs["step"].to_numpy()
    working = grid.calendar["working_day"].to_numpy()[:, None]
    back = target - grid.day * np.ceil(step / grid.day).astype(int)
    same_kind = fc._take(working, back, np.zeros_like(target)) == X["working_day"].to_numpy()
    daily = np.where(same_kind, lags[:, 2], lags[:, 3])
    plain_weekly, plain_daily = fc._naive(grid, pairs, grid.week), fc._naive(grid, pairs, grid.day)
    weekly = np.where(np.isnan(weekly), plain_weekly, weekly)
    daily = np.where(np.isnan(daily), plain_daily, daily)
    return weekly, daily


def _holiday_affected(grid: fc._Grid) -> np.ndarray:
    """Per grid row: a holiday, or the day before or after one."""
    cal = grid.calendar
    return (cal["holiday"] + cal["holiday_prev"] + cal["holiday_next"]).to_numpy() > 0


def holiday_widening(grid: fc._Grid, level: np.ndarray) -> float:
    """How much wider the bands must be around holidays, from the history: the mean relative error of the
    calendar-aware weekly naive on holiday-affected days over that on other days, within [1, 3].

    Why: the backtest weeks rarely hold a holiday, so their residuals describe ordinary days; on the I-94
    4 July week the bands from them covered 67 %. Past holidays tell how much harder those days are.
    1.0 when the history holds fewer than three holiday-affected days.
    """
    affected = _holiday_affected(grid)
    start = max(grid.week, grid.n_observed - 365 * grid.day)
    rows = np.arange(start, grid.n_observed)
    if affected[rows].sum() < 3 * grid.day:
        return 1.0
    pairs = fc._with_series(pd.DataFrame({"target": rows, "step": np.full(len(rows), grid.day)}), grid)
    targets, cols = pairs["target"].to_numpy(), pairs["series"].to_numpy()
    weekly, _ = calendar_naives(grid, pairs)
    error = np.abs(grid.values[targets, cols] - weekly) / (np.maximum(weekly, 0.0) + 0.1 * level[cols])
    with fc._quiet():
        ratio = np.nanmean(error[affected[targets]]) / np.nanmean(error[~affected[targets]])
    return float(np.clip(ratio, 1.0, 3.0)) if np.isfinite(ratio) else 1.0


def backtest_pairs(grid: fc._Grid, days: int) -> tuple[pd.DataFrame, np.ndarray]:
    """(target, step, series) rows of forecasts made at daily origins at the same time of day as the real
    one, over the last `days` days (at most half the history), and each row's origin index (0 = latest).

    The same phase as the real origin means step k of the backtest is the same hour of day as step k of
    the forecast, so the per-step bands are calibrated for exactly the hours they will cover.
    """
    n_obs, day = grid.n_observed, grid.day
    count = max(1, min(days, (n_obs // 2) // day))
    origin_day = np.arange(count)
    origins = n_obs - 1 - (origin_day + 1) * day
    steps = np.arange(1, grid.horizon + 1)
    o, st = (a.ravel() for a in np.meshgrid(origins, steps, indexing="ij"))
    which = np.repeat(origin_day, len(steps))
    keep = (o >= 0) & (o + st < n_obs)
    frame = fc._with_series(pd.DataFrame({"target": o[keep] + st[keep], "step": st[keep]}), grid)
    n_series = grid.values.shape[1]
    return frame, np.repeat(which[keep], n_series)


def _block(steps: np.ndarray, horizon: int) -> np.ndarray:
    """Horizon block (0..BLOCKS-1) of each step: bands differ between the night, rush hours and later."""
    return (steps - 1) * BLOCKS // horizon


def _metrics(
    series: TrafficSeries,
    preds: np.ndarray,
    combined: np.ndarray,
    actual: np.ndarray,
    cols: np.ndarray,
    naive_scale: np.ndarray,
    weights: np.ndarray,
    methods: dict[int, str],
    history: np.ndarray,
) -> dict[str, dict]:
    """Per series: backtest MAE/MASE/WAPE of the forecast made and of each candidate, and the weights."""
    out: dict[str, dict] = {}
    for i, name in enumerate(series.columns):
        rows = (cols == i) & ~np.isnan(actual)
        truth = actual[rows]
        candidates = {
            method: _scores(truth, preds[rows, j], naive_scale[i])
            for j, method in enumerate(METHODS)
            if not np.isnan(preds[rows, j]).any()
        }
        out[name] = {
            "method": methods[i],
            **_scores(truth, combined[rows], naive_scale[i]),
            "weights": {m: round(float(w), 4) for m, w in zip(METHODS, weights[i], strict=True)},
            "candidates": candidates,
            "backtest_points": int(rows.sum()),
            "history_steps": int(history[i]),
        }
    return out


def _scores(truth: np.ndarray, pred: np.ndarray, scale: float) -> dict[str, float | None]:
    if not len(truth):
        return {"mae": None, "mase": None, "wape": None}
    error = np.abs(truth - pred)
    total = np.abs(truth).sum()
    return {
        "mae": fc._num(error.mean()),
        "mase": fc._num(error.mean() / scale) if scale > 0 else None,
        "wape": fc._num(error.sum() / total) if total > 0 else None,
    }
