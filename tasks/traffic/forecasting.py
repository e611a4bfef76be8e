"""Traffic-flow forecasting: one global gradient-boosting model, seasonal-naive guards, conformal bands.

Why this shape: road and sensor flows are dominated by the daily and weekly cycle, so the weekly seasonal
naive is a strong baseline that a model must beat series by series. We fit a single scikit-learn model
across all series (more data per pattern, one fit instead of N), let a rolling backtest on the last week
decide per series between the model, the naive forecasts and a blend, and take prediction intervals from
that same backtest's residuals (split conformal, per forecast step).

Multi-step strategy: direct, with the step ahead `h` as a feature. Every lag is taken at the most recent
multiple of the daily or weekly period that is at least `h` steps back, so no forecast is fed back into
the model and every horizon is predicted from observed data only.

The model predicts the correction to a calendar-aware weekly naive: last week's value, unless last week's
day and the target day differ in kind (working vs holiday/weekend, make-up workdays included), in which
case the latest day of the same kind. Correcting a good baseline is easier for trees than predicting the
level, and holidays stop dragging the baseline the wrong way.

Pure domain code: no Prefect here; the flow calls `forecast` and reports progress through a callback.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import holidays
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from tasks.traffic.data import TrafficSeries

Progress = Callable[[float, str], None]

MODEL = "model"
BLEND = "blend"
NAIVE_WEEKLY = "seasonal_naive_weekly"
NAIVE_DAILY = "seasonal_naive_daily"
# Tie-break order: on equal backtest error prefer the simpler method.
CANDIDATES = (NAIVE_WEEKLY, NAIVE_DAILY, BLEND, MODEL)

MIN_RESIDUALS_PER_STEP = 30
# A public holiday counts as a working day for the forecast only when its past occurrences lay clearly
# closer to working days than to weekend days (`_worked_holidays`).
WORKED_HOLIDAY_EVIDENCE = 1 / 3

FEATURES = (
    "series",
    "step",
    "time_of_day",
    "day_of_week",
    "holiday",
    "holiday_prev",
    "holiday_next",
    "working_day",
    "working_lag_week",
    "lag_day",
    "lag_week",
    "lag_week2",
    "lag_week_mean",
    "lag_same_kind",
    "holiday_lag_week",
    "holiday_lag_day",
    "last",
    "dev_week_recent",
    "dev_week_day",
    "dev_day_recent",
)


@dataclass(frozen=True)
class ForecastConfig:
    """What the job asks for. `horizon` is in steps of the inferred interval; None means one day."""

    horizon: int | None = None
    interval_level: float = 0.8
    holiday_country: str | None = "CN"
    max_history_days: int = 730
    backtest_days: int = 7
    min_model_history_days: int = 14
    max_train_rows: int = 400_000
    boosting_rounds: int = 400
    seed: int = 0
    # the combination forecaster (tasks.traffic.combination): weeks scored for weights and bands, and
    # how far the weights are pulled toward equal ones
    backtest_weeks: int = 4
    shrinkage: float = 0.3
    # Treat a public holiday the history shows was worked as a working day (`_worked_holidays`). Over the
    # 48 scored benchmark weeks and three seeds of the booster it lowered the geometric mean ratio to the
    # better naive by 2.1-2.7 % on every seed and the worst week from 1.54-1.67x to 1.07-1.14x (I-94's
    # Columbus Day), with coverage as close to 80 % within the seeds' own spread (README, Known limits).
    learn_holidays: bool = True

    def __post_init__(self) -> None:
        if self.horizon is not None and self.horizon < 1:
            raise ValueError(f"horizon must be a positive number of steps, got {self.horizon}")
        if not 0 < self.interval_level < 1:
            raise ValueError(f"interval_level must be between 0 and 1, got {self.interval_level}")
        if self.holiday_country is not None:
            try:
                holidays.country_holidays(self.holiday_country)
            except NotImplementedError as exc:
                raise ValueError(f"unknown holiday country {self.holiday_country!r}") from exc


@dataclass
class ForecastResult:
    """Point forecast shaped like the upload, bounds as `<col>_lower`/`<col>_upper`, JSON-able metrics.

    `metrics` maps each series to its backtest scores and chosen method; `info` holds run-level facts.
    """

    point: pd.DataFrame
    bounds: pd.DataFrame
    metrics: dict[str, dict]
    info: dict[str, object] = field(default_factory=dict)

    def combined(self) -> pd.DataFrame:
        """One table with point and bounds side by side, column by column, for a single output file."""
        time_column = self.point.columns[0]
        ordered = [time_column]
        for column in self.point.columns[1:]:
            ordered += [column, f"{column}_lower", f"{column}_upper"]
        return self.point.merge(self.bounds, on=time_column)[ordered]


@dataclass(frozen=True)
class _Grid:
    """Observed values on the grid extended by the horizon, with calendar features per row."""

    values: np.ndarray
    n_observed: int
    day: int
    week: int
    horizon: int
    calendar: pd.DataFrame
    times: pd.DatetimeIndex


def forecast(
    series: TrafficSeries, config: ForecastConfig | None = None, progress: Progress | None = None
) -> ForecastResult:
    """Forecast every series `config.horizon` steps past the end of the upload: the day-ahead model
    combined with the seasonal naives (see tasks.traffic.combination, issue #13)."""
    from tasks.traffic.combination import forecast_combined

    return forecast_combined(series, config or ForecastConfig(), progress or (lambda fraction, stage: None))


def forecast_selection(
    series: TrafficSeries, config: ForecastConfig | None = None, progress: Progress | None = None
) -> ForecastResult:
    """The previous forecaster, kept for the before/after benchmark (bench/traffic_accuracy.py).

    Steps: backtest fit on all but the last week, rolling-origin backtest over that week for the model,
    both seasonal naives and their blend; per-series choice of the lowest backtest MAE (so never worse than
    the better naive there); final fit on all data; bands from the chosen method's backtest residuals.
    Series with under `min_model_history_days` of history never use the model.
    """
    config = config or ForecastConfig()
    report = progress or (lambda fraction, stage: None)
    started = time.perf_counter()
    report(0.0, "prepare")
    grid = _build_grid(series, config)
    bt_start = _backtest_start(grid, config)
    history = _history_steps(grid)
    min_history = config.min_model_history_days * grid.day
    use_model = bool((history >= min_history).any()) and bt_start > grid.week

    pairs = _backtest_pairs(grid, bt_start)
    preds = {NAIVE_WEEKLY: _naive(grid, pairs, grid.week), NAIVE_DAILY: _naive(grid, pairs, grid.day)}
    fit_seconds = 0.0
    if use_model:
        report(0.1, "backtest fit")
        fitted = _fit(grid, bt_start, config)
        fit_seconds += fitted.seconds
        report(0.45, "backtest")
        preds[MODEL] = fitted.predict(grid, pairs)
        preds[BLEND] = (preds[MODEL] + preds[NAIVE_WEEKLY]) / 2
    actual = grid.values[pairs["target"], pairs["series"]]
    report(0.5, "choose")
    choice, metrics = _choose(grid, series, pairs, preds, actual, bt_start, history, min_history)

    future = _future_pairs(grid)
    out = {NAIVE_WEEKLY: _naive(grid, future, grid.week), NAIVE_DAILY: _naive(grid, future, grid.day)}
    if any(method in (MODEL, BLEND) for method in choice.values()):
        report(0.55, "final fit")
        fitted = _fit(grid, grid.n_observed, config)
        fit_seconds += fitted.seconds
        out[MODEL] = fitted.predict(grid, future)
        out[BLEND] = (out[MODEL] + out[NAIVE_WEEKLY]) / 2
    report(0.95, "intervals")
    point, lower, upper = _assemble(grid, series, pairs, preds, actual, future, out, choice, config)
    times = series.format_times(grid.times[grid.n_observed :])
    point_frame = pd.DataFrame({series.time_column: times, **dict(zip(series.columns, point.T, strict=True))})
    bounds_frame = pd.DataFrame({series.time_column: times})
    for i, column in enumerate(series.columns):
        bounds_frame[f"{column}_lower"] = lower[:, i]
        bounds_frame[f"{column}_upper"] = upper[:, i]
    info = {
        "horizon": grid.horizon,
        "interval_level": config.interval_level,
        "holiday_country": config.holiday_country,
        "backtest_start": grid.times[bt_start].isoformat(),
        "fit_seconds": round(fit_seconds, 3),
        "total_seconds": round(time.perf_counter() - started, 3),
    }
    report(1.0, "done")
    return ForecastResult(point=point_frame, bounds=bounds_frame, metrics=metrics, info=info)


def seasonal_naive(series: TrafficSeries, period: int, horizon: int) -> pd.DataFrame:
    """Value at the same phase of the last observed period (falling back to earlier periods over gaps)."""
    grid = _build_grid(series, ForecastConfig(horizon=horizon, holiday_country=None))
    values = _naive(grid, _future_pairs(grid), period)
    shape = (grid.horizon, len(series.columns))
    return pd.DataFrame(values.reshape(shape), index=grid.times[grid.n_observed :], columns=series.columns)


@contextmanager
def single_thread() -> Iterator[None]:
    """One OpenMP/BLAS thread: on 2-core workers two threads made the fit 18x slower (oversubscription)."""
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        if previous is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = previous


def _build_grid(series: TrafficSeries, config: ForecastConfig) -> _Grid:
    day, week = series.steps_per_day, series.steps_per_week
    horizon = config.horizon or day
    observed = series.frame.to_numpy(dtype="float64")
    keep = min(len(observed), config.max_history_days * day + week)
    observed = observed[-keep:]
    values = np.vstack([observed, np.full((horizon, observed.shape[1]), np.nan)])
    index = series.frame.index[-keep:]
    times = index.append(pd.date_range(index[-1] + series.interval, periods=horizon, freq=series.interval))
    return _Grid(
        values=values,
        n_observed=keep,
        day=day,
        week=week,
        horizon=horizon,
        calendar=_calendar(
            times, series.interval, config.holiday_country, values if config.learn_holidays else None
        ),
        times=times,
    )


def _calendar(
    times: pd.DatetimeIndex, interval: pd.Timedelta, country: str | None, values: np.ndarray | None = None
) -> pd.DataFrame:
    """Time of day, weekday, holiday flags (day, day before, day after) and working day per grid row.

    Working day covers China's make-up workdays (调休): a Sunday worked to bridge a holiday carries
    weekday traffic, which neither the weekday nor the holiday flag can tell. With `values` (the grid's,
    one row per time), a public holiday whose past occurrences in them looked like working days is
    treated as one (`_worked_holidays`); their names are in the frame's attrs["worked_holidays"].
    """
    dates = times.normalize()
    worked_names: list[str] = []  # the holidays `_worked_holidays` found worked, for the job's log
    weekday = times.day_of_week.to_numpy()
    time_of_day = ((times - dates) // interval).to_numpy()
    day_number = ((dates - dates[0]) // pd.Timedelta(days=1)).to_numpy()
    if country is None:
        off = np.zeros(len(times), dtype=bool)
        flags = {"holiday": off, "holiday_prev": off, "holiday_next": off, "working_day": weekday < 5}
    else:
        calendar = holidays.country_holidays(country, years=range(times[0].year - 1, times[-1].year + 2))
        days = pd.DatetimeIndex(sorted(calendar))
        extra = pd.DatetimeIndex(sorted(getattr(calendar, "weekend_workdays", ())))
        if times.tz is not None:
            days, extra = days.tz_localize(times.tz), extra.tz_localize(times.tz)
        weekend_days = sorted(getattr(calendar, "weekend", {5, 6}))
        if values is not None:
            # by name without the "(observed)" suffix: an observed day is the same holiday
            names = [calendar[day.date()].split(" (")[0] for day in days]
            holiday_number = ((days.normalize() - dates[0]) // pd.Timedelta(days=1)).to_numpy()
            steps = round(pd.Timedelta(days=1) / interval)
            grid_days = (day_number, time_of_day, int(weekday[0]), steps)
            worked = _worked_holidays(holiday_number, names, grid_days, values, weekend_days)
            worked_names = sorted({name for name, w in zip(names, worked, strict=True) if w})
            days = days[~worked]
        holiday = dates.isin(days)
        weekend = np.isin(weekday, weekend_days)
        flags = {
            "holiday": holiday,
            "holiday_prev": (dates - pd.Timedelta(days=1)).isin(days),
            "holiday_next": (dates + pd.Timedelta(days=1)).isin(days),
            "working_day": ~holiday & (~weekend | dates.isin(extra)),
        }
    frame = pd.DataFrame(
        {
            "time_of_day": time_of_day,
            "day_number": day_number,
            "day_of_week": weekday,
            **{k: np.asarray(v, dtype="float64") for k, v in flags.items()},
        }
    )
    frame.attrs["worked_holidays"] = worked_names
    return frame


def _worked_holidays(
    holiday_number: np.ndarray,
    names: list[str],
    grid_days: tuple[np.ndarray, np.ndarray, int, int],
    values: np.ndarray,
    weekend: list[int],
) -> np.ndarray:
    """Per holiday (its day number on the grid, its name without "(observed)"): True where that holiday
    (by name, so observed days count with it) behaved like a working day in the observed `values`, so the
    forecast should treat it as one. `grid_days` is what `_calendar` already knows per grid row: day
    number and step of the day, plus the weekday of day 0 and the steps per day.

    Why: a country's public holidays are not all days off for traffic. Columbus Day closes federal offices
    but not Minnesota's businesses: I-94 carried its usual Monday, and treating the day as a holiday
    (weekend-like baseline, holiday features) cost that week 1.57x the better naive
    (bench/results/traffic_accuracy.md, batch 7). For every past weekday occurrence, its daily profile
    (each series over its mean) is compared with the same weekday one and two weeks around it and with the
    weekend days of the weeks around it, skipping days next to a holiday; a name counts as worked only on
    clear evidence: on average over its occurrences, (off - work) / (off + work) of the two distances is
    above WORKED_HOLIDAY_EVIDENCE (1/3: the day lay about twice as close to the working days). A close
    call keeps the calendar's word (PeMS's Independence Day observed on Friday 2015-07-03 lay as close to
    both; one such occurrence flipped 4 July 2016 to a working day, 1.01x instead of 0.81x), and so does a
    holiday never observed.
    """
    day_no, slot, weekday_of_first, steps = grid_days
    if steps < 2 or not len(holiday_number):
        return np.zeros(len(holiday_number), dtype=bool)
    with _quiet():
        level = np.nanmean(values, axis=0)
    level = np.where(np.isfinite(level) & (level > 0), level, 1.0)
    profiles = np.full((int(day_no[-1]) + 1, steps, values.shape[1]), np.nan)
    inside = (slot >= 0) & (slot < steps)
    profiles[day_no[inside], slot[inside]] = values[inside] / level
    near_holiday = {int(n) + k for n in holiday_number for k in (-1, 0, 1)}

    def usable(n: int) -> bool:
        return 0 <= n < len(profiles) and n not in near_holiday

    def distance(n: int, refs: list[int]) -> float:
        refs = [r for r in refs if usable(r)]
        if not refs:
            return np.nan
        with _quiet():
            return float(np.nanmean(np.abs(profiles[n] - np.nanmean(profiles[refs], axis=0))))

    evidence: dict[str, list[float]] = {}
    for n, name in zip(holiday_number, names, strict=True):
        n = int(n)
        weekday = (weekday_of_first + n) % 7
        if not 0 <= n < len(profiles) or weekday in weekend or np.isnan(profiles[n]).mean() > 0.5:
            continue
        work = distance(n, [n + k for k in (-7, 7, -14, 14)])
        off = distance(n, [n + k for k in range(-7, 8) if (weekday + k) % 7 in weekend])
        if np.isfinite(work) and np.isfinite(off) and off + work > 0:
            evidence.setdefault(name, []).append((off - work) / (off + work))
    worked_names = {name for name, scores in evidence.items() if np.mean(scores) > WORKED_HOLIDAY_EVIDENCE}
    return np.array([name in worked_names for name in names], dtype=bool)


def _history_steps(grid: _Grid) -> np.ndarray:
    """Steps from each series' first observation to the end of the upload."""
    observed = ~np.isnan(grid.values[: grid.n_observed])
    first = np.where(observed.any(axis=0), observed.argmax(axis=0), grid.n_observed)
    return grid.n_observed - first


def _backtest_start(grid: _Grid, config: ForecastConfig) -> int:
    """First backtest origin: one week (or `backtest_days`) before the end, at most half the history."""
    length = min(config.backtest_days * grid.day, grid.n_observed // 2)
    return grid.n_observed - max(length, 1)


def _backtest_pairs(grid: _Grid, start: int) -> pd.DataFrame:
    """(origin, step) pairs whose targets fall inside the backtest window, about 168 origins per series."""
    length = grid.n_observed - start
    stride = max(1, length // 168)
    origins = np.arange(start - 1, grid.n_observed - 1, stride)
    steps = np.arange(1, grid.horizon + 1)
    origin, step = (a.ravel() for a in np.meshgrid(origins, steps, indexing="ij"))
    keep = origin + step < grid.n_observed
    return _with_series(pd.DataFrame({"target": origin[keep] + step[keep], "step": step[keep]}), grid)


def _future_pairs(grid: _Grid) -> pd.DataFrame:
    steps = np.arange(1, grid.horizon + 1)
    return _with_series(pd.DataFrame({"target": grid.n_observed - 1 + steps, "step": steps}), grid)


def _with_series(pairs: pd.DataFrame, grid: _Grid) -> pd.DataFrame:
    n_series = grid.values.shape[1]
    frame = pairs.loc[pairs.index.repeat(n_series)].reset_index(drop=True)
    frame["series"] = np.tile(np.arange(n_series), len(pairs))
    return frame


def _take(values: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """values[rows, columns] with NaN wherever the row falls before the start of the grid."""
    out = np.full(len(rows), np.nan)
    ok = rows >= 0
    out[ok] = values[rows[ok], columns[ok]]
    return out


def _naive(grid: _Grid, pairs: pd.DataFrame, period: int) -> np.ndarray:
    """Seasonal naive per pair, skipping back whole periods over gaps; series mean if never observed."""
    observed = pd.DataFrame(grid.values[: grid.n_observed])
    phase_filled = observed.groupby(np.arange(grid.n_observed) % period).ffill().to_numpy()
    target, step, col = (pairs[k].to_numpy() for k in ("target", "step", "series"))
    lag = period * np.ceil(step / period).astype(int)
    out = _take(phase_filled, target - lag, col)
    with _quiet():
        means = np.nan_to_num(np.nanmean(grid.values[: grid.n_observed], axis=0))
    return np.where(np.isnan(out), means[col], out)


def _features(grid: _Grid, pairs: pd.DataFrame, scaled: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Feature rows for (target, step, series) triples plus the baseline the model corrects.

    `scaled` is the grid divided by the per-series level; lags are NaN where the grid has gaps, which the
    gradient boosting handles natively.
    """
    target, step, col = (pairs[k].to_numpy() for k in ("target", "step", "series"))
    origin = target - step
    k_day = grid.day * np.ceil(step / grid.day).astype(int)
    k_week = grid.week * np.ceil(step / grid.week).astype(int)
    weekly = np.column_stack([_take(scaled, target - k_week - j * grid.week, col) for j in range(4)])
    cal = grid.calendar
    dev_week = scaled - _shift(scaled, grid.week)
    dev_day = scaled - _shift(scaled, grid.day)
    short = max(1, grid.day // 8)
    recent_week = _rolling_mean(dev_week, short)
    day_week = _rolling_mean(dev_week, grid.day)
    recent_day = _rolling_mean(dev_day, short)
    holiday = cal["holiday"].to_numpy()
    working = cal["working_day"].to_numpy()
    with np.errstate(all="ignore"), _quiet():
        week_mean = np.nanmean(weekly, axis=1)
    frame = pd.DataFrame(
        {
            "series": col,
            "step": step,
            "time_of_day": cal["time_of_day"].to_numpy()[target],
            "day_of_week": cal["day_of_week"].to_numpy()[target],
            "holiday": holiday[target],
            "holiday_prev": cal["holiday_prev"].to_numpy()[target],
            "holiday_next": cal["holiday_next"].to_numpy()[target],
            "working_day": working[target],
            "working_lag_week": _take(working[:, None], target - k_week, np.zeros_like(col)),
            "lag_day": _take(scaled, target - k_day, col),
            "lag_week": weekly[:, 0],
            "lag_week2": weekly[:, 1],
            "lag_week_mean": week_mean,
            "holiday_lag_week": _take(holiday[:, None], target - k_week, np.zeros_like(col)),
            "holiday_lag_day": _take(holiday[:, None], target - k_day, np.zeros_like(col)),
            "last": _take(scaled, origin, col),
            "dev_week_recent": _take(recent_week, origin, col),
            "dev_week_day": _take(day_week, origin, col),
            "dev_day_recent": _take(recent_day, origin, col),
        }
    )
    frame["lag_same_kind"] = _take(scaled, _same_kind_row(grid, target, k_day), col)
    same_kind = frame["working_lag_week"].to_numpy() == frame["working_day"].to_numpy()
    weekly_base = frame["lag_week"].where(same_kind, frame["lag_same_kind"])
    base = weekly_base.fillna(frame["lag_week"]).fillna(frame["lag_week2"]).fillna(frame["lag_day"])
    return frame[list(FEATURES)], base.fillna(1.0).to_numpy()


def _same_kind_row(grid: _Grid, target: np.ndarray, k_day: np.ndarray) -> np.ndarray:
    """Same time of day on the latest day, at least `k_day` steps back, that is working/non-working like
    the target day (-1 if none): the natural baseline for holidays and make-up workdays."""
    day_number = grid.calendar["day_number"].to_numpy()
    working = grid.calendar.groupby("day_number")["working_day"].first()
    today = day_number[target]
    latest_allowed = today - k_day // grid.day
    back = np.full(len(target), -1)
    for kind in (0.0, 1.0):
        days = working.index.to_numpy()[working.to_numpy() == kind]
        rows = working.loc[today].to_numpy() == kind
        found = np.searchsorted(days, latest_allowed[rows], side="right") - 1
        back[rows] = np.where(found >= 0, today[rows] - days[np.maximum(found, 0)], -1)
    return np.where(back > 0, target - back * grid.day, -1)


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's all-NaN warnings: empty lags are expected and become NaN features."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _shift(values: np.ndarray, lag: int) -> np.ndarray:
    out = np.full_like(values, np.nan)
    if lag < len(values):
        out[lag:] = values[:-lag]
    return out


def _rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    return pd.DataFrame(values).rolling(window, min_periods=1).mean().to_numpy()


def _scale(grid: _Grid, end: int) -> np.ndarray:
    """Per-series mean level before `end`, so one model sees all roads on the same scale."""
    with _quiet():
        level = np.nanmean(np.abs(grid.values[:end]), axis=0)
    return np.where(np.isfinite(level) & (level > 0), level, 1.0)


@dataclass(frozen=True)
class _Fitted:
    estimator: HistGradientBoostingRegressor
    scale: np.ndarray
    constant_columns: list[str]
    seconds: float

    def predict(self, grid: _Grid, pairs: pd.DataFrame) -> np.ndarray:
        X, base = _features(grid, pairs, grid.values / self.scale)
        X[self.constant_columns] = 0.0
        with single_thread():
            delta = self.estimator.predict(X)
        return np.maximum(base + delta, 0.0) * self.scale[pairs["series"].to_numpy()]


def _fit(grid: _Grid, end: int, config: ForecastConfig) -> _Fitted:
    """Fit on targets before `end` only (the backtest fit never sees the backtest window).

    Each training target gets a few random steps ahead, enough for the step feature to be learned
    without multiplying the rows by the horizon.
    """
    started = time.perf_counter()
    scale = _scale(grid, end)
    scaled = grid.values / scale
    scaled[end:] = np.nan
    rng = np.random.default_rng(config.seed)
    n_series = grid.values.shape[1]
    targets = np.arange(grid.day, end)
    per_target = min(grid.horizon, 4)
    cap = config.max_train_rows // (per_target * n_series)
    if len(targets) > cap:
        targets = np.sort(rng.choice(targets, cap, replace=False))
    pairs = pd.DataFrame(
        {
            "target": np.repeat(targets, per_target * n_series),
            "step": rng.integers(1, grid.horizon + 1, len(targets) * per_target * n_series),
            "series": np.tile(np.arange(n_series), len(targets) * per_target),
        }
    )
    y = scaled[pairs["target"].to_numpy(), pairs["series"].to_numpy()]
    X, base = _features(grid, pairs, scaled)
    ok = ~np.isnan(y)
    X, y, base = X[ok], y[ok], base[ok]
    constant = [str(c) for c in X.columns[X.isna().all()]]
    X[constant] = 0.0
    estimator = HistGradientBoostingRegressor(
        loss="absolute_error",
        learning_rate=0.1,
        max_iter=config.boosting_rounds,
        max_leaf_nodes=63,
        min_samples_leaf=40,
        l2_regularization=1.0,
        categorical_features=[0] if n_series <= 255 else None,
        early_stopping=False,
        random_state=config.seed,
    )
    with single_thread():
        estimator.fit(X, y - base)
    return _Fitted(estimator, scale, constant, time.perf_counter() - started)


def _choose(
    grid: _Grid,
    series: TrafficSeries,
    pairs: pd.DataFrame,
    preds: dict[str, np.ndarray],
    actual: np.ndarray,
    bt_start: int,
    history: np.ndarray,
    min_model_history: int,
) -> tuple[dict[int, str], dict[str, dict]]:
    """Per series, the candidate with the lowest backtest MAE; scores reported as MASE and WAPE.

    Series with less than `min_model_history` steps of history only choose between the naives.
    """
    col = pairs["series"].to_numpy()
    ok = ~np.isnan(actual)
    scale = _naive_mae(grid.values[:bt_start], grid.day)
    choice: dict[int, str] = {}
    metrics: dict[str, dict] = {}
    for i, name in enumerate(series.columns):
        rows = ok & (col == i)
        truth = actual[rows]
        scores = {}
        for method in CANDIDATES:
            if method not in preds or (method in (MODEL, BLEND) and history[i] < min_model_history):
                continue
            error = np.abs(truth - preds[method][rows])
            scores[method] = {
                "mae": _num(error.mean()) if len(error) else None,
                "mase": _num(error.mean() / scale[i]) if len(error) and scale[i] > 0 else None,
                "wape": _num(error.sum() / np.abs(truth).sum()) if np.abs(truth).sum() > 0 else None,
            }
        ranked = [m for m in scores if scores[m]["mae"] is not None]
        best = min(ranked, key=lambda m: scores[m]["mae"]) if ranked else NAIVE_WEEKLY
        choice[i] = best
        metrics[name] = {
            "method": best,
            **scores.get(best, {"mae": None, "mase": None, "wape": None}),
            "candidates": scores,
            "backtest_points": int(rows.sum()),
            "history_steps": int(history[i]),
        }
    return choice, metrics


def _naive_mae(values: np.ndarray, period: int) -> np.ndarray:
    """In-sample MAE of the seasonal naive: the MASE denominator."""
    if len(values) <= period:
        return np.full(values.shape[1], np.nan)
    with _quiet():
        return np.nanmean(np.abs(values[period:] - values[:-period]), axis=0)


def _num(value: float) -> float | None:
    return round(float(value), 6) if math.isfinite(value) else None


def _assemble(
    grid: _Grid,
    series: TrafficSeries,
    pairs: pd.DataFrame,
    preds: dict[str, np.ndarray],
    actual: np.ndarray,
    future: pd.DataFrame,
    out: dict[str, np.ndarray],
    choice: dict[int, str],
    config: ForecastConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chosen point forecast and conformal bands, as (horizon, n_series) arrays."""
    n_series = len(series.columns)
    method = np.array([choice[i] for i in range(n_series)])
    col_fu = future["series"].to_numpy()
    chosen_bt = _pick(preds, method[pairs["series"].to_numpy()])
    chosen_fu = _pick(out, method[col_fu])
    level = _scale(grid, grid.n_observed)
    lo, hi = _conformal(pairs, actual, chosen_bt, level, grid.horizon, config.interval_level)
    step = future["step"].to_numpy() - 1
    point = np.maximum(chosen_fu, 0.0)
    spread = point + 0.1 * level[col_fu]
    lower = np.clip(point + lo[step, col_fu] * spread, 0.0, point)
    upper = np.maximum(point + hi[step, col_fu] * spread, point)
    shape = (grid.horizon, n_series)
    return point.reshape(shape), lower.reshape(shape), upper.reshape(shape)


def _pick(predictions: dict[str, np.ndarray], method: np.ndarray) -> np.ndarray:
    """Row by row, the prediction of the method chosen for that row's series."""
    names = [m for m in predictions if (method == m).any()]
    return np.select([method == m for m in names], [predictions[m] for m in names], default=np.nan)


def _conformal(
    pairs: pd.DataFrame,
    actual: np.ndarray,
    pred: np.ndarray,
    level: np.ndarray,
    horizon: int,
    coverage: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per step and series, quantiles of residuals relative to the forecast level (split conformal).

    Residuals are divided by (forecast + 10 % of the series mean) so bands widen at rush hour and shrink
    at night; steps with fewer than `MIN_RESIDUALS_PER_STEP` residuals use their series' pooled quantiles,
    and a series with no observation in the backtest window borrows the quantiles of all series.
    """
    col = pairs["series"].to_numpy()
    spread = np.maximum(pred, 0.0) + 0.1 * level[col]
    frame = pd.DataFrame(
        {"series": col, "step": pairs["step"].to_numpy(), "r": (actual - pred) / spread}
    ).dropna()
    alpha = 1 - coverage
    per_step = frame.groupby(["series", "step"])["r"].agg(lambda r: _quantiles(r.to_numpy(), alpha))
    pooled = frame.groupby("series")["r"].agg(lambda r: _quantiles(r.to_numpy(), alpha))
    everything = _quantiles(frame["r"].to_numpy(), alpha) if len(frame) else (0.0, 0.0)
    counts = frame.groupby(["series", "step"]).size()
    lo = np.zeros((horizon, len(level)))
    hi = np.zeros((horizon, len(level)))
    for i in range(len(level)):
        lo[:, i], hi[:, i] = pooled.get(i, everything)
    for (i, step), (q_lo, q_hi) in per_step[counts >= MIN_RESIDUALS_PER_STEP].items():
        lo[step - 1, i], hi[step - 1, i] = q_lo, q_hi
    return np.minimum(lo, 0.0), np.maximum(hi, 0.0)


def _quantiles(residuals: np.ndarray, alpha: float) -> tuple[float, float]:
    """Equal-tailed conformal quantiles with the (n + 1) / n finite-sample correction."""
    n = len(residuals)
    q_hi = min(1.0, (1 - alpha / 2) * (n + 1) / n)
    q_lo = max(0.0, 1 - q_hi)
    return float(np.quantile(residuals, q_lo)), float(np.quantile(residuals, q_hi))
