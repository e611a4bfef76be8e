"""Study of the traffic forecast's combination weights and bands on recorded backtests (issue #13).

Why: the weights (`tasks.traffic.combination.point_weights`) and the bands (`interval_bands`) are separate
steps on top of the two model fits, so variants of either can be compared without refitting. This script
runs the benchmark's protocol (bench/traffic_accuracy.py: 7 daily origins per window, horizon 24 h) once,
records every call's inputs of both steps, the model's forecast of the next day, the seasonal naives and
the truth into a pickle, then scores each variant per window in seconds: ratio of its MAE to the better
seasonal naive's, and the 80 % coverage.

Band variants (`--bands`) set the keywords of `interval_bands` on the same recording: the calibration's
day half-life (how strongly the level reacts to the latest misses) and the cap of the holiday widening.

Usage: python bench/traffic_study.py [--windows tuned,held-out] [--jobs 2] [--record path] [--bands]
Only the batches named are recorded and scored (traffic_sets.BATCHES: tuned, held-out, held-out 2,
held-out 3, ... held-out 9), so a batch kept for an out-of-sample check stays unseen until the
variant is fixed.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import pickle
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.traffic_accuracy import HORIZON, LEVEL, ORIGINS  # noqa: E402
from tasks.traffic import combination  # noqa: E402
from tasks.traffic.forecasting import ForecastConfig, seasonal_naive  # noqa: E402
from tests.support import traffic_sets  # noqa: E402

BAND_ARGS = ("grid", "actual", "combined", "cols", "steps", "origin_day", "point", "future", "coverage")
WEIGHT_ARGS = ("preds", "actual", "cols", "origin_day", "naive_scale", "has_model", "shrinkage")
# `--bands`: keyword settings of combination.interval_bands (the shipped ones are its defaults)
BAND_VARIANTS: dict[str, dict[str, float]] = {
    "feedback 1 day": {"day_half_life": 1.0},
    "feedback 1.5 days": {"day_half_life": 1.5},
    "feedback 5 days": {"day_half_life": 5.0},
    "holiday cap 1.3": {"widening_cap": 1.3},
    "no holiday widening": {"widening_cap": 1.0},
}


def record_window(task: tuple[str, str, str]) -> dict[str, object]:
    """Per forecast of the window: the inputs of both steps, the model's next-day forecast, the naives
    and the truth of the forecast day."""
    name, label, end = task
    series = traffic_sets.load(name)
    config = ForecastConfig(horizon=HORIZON, interval_level=LEVEL, holiday_country="US")
    calls: list[dict[str, object]] = []
    originals = (combination.interval_bands, combination.point_weights, combination.DirectModel.predict)

    def bands(*args: object) -> tuple[np.ndarray, np.ndarray, float, float]:
        calls[-1]["bands"] = dict(zip(BAND_ARGS, args, strict=True))
        return originals[0](*args)

    def weights(*args: object) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        calls[-1]["weights"] = dict(zip(WEIGHT_ARGS, args, strict=True))
        return originals[1](*args)

    def predict(model: combination.DirectModel, grid: object, pairs: pd.DataFrame) -> np.ndarray:
        out = originals[2](model, grid, pairs)
        calls[-1]["model_future"] = out  # the last call of a forecast is the one for the future rows
        return out

    combination.interval_bands, combination.point_weights = bands, weights  # type: ignore[assignment]
    combination.DirectModel.predict = predict  # type: ignore[method-assign]
    try:
        for k in range(ORIGINS, 0, -1):
            origin = pd.Timestamp(end) - pd.Timedelta(hours=HORIZON * k)
            history = dataclasses.replace(series, frame=series.frame.loc[:origin])
            calls.append({})
            combination.forecast_combined(history, config, lambda fraction, stage: None)
            calls[-1]["truth"] = series.frame.iloc[:, 0][
                origin + series.interval : origin + HORIZON * series.interval
            ].to_numpy()
            calls[-1]["naives"] = [
                seasonal_naive(history, period, HORIZON).iloc[:, -1].to_numpy() for period in (24, 168)
            ]
    finally:
        combination.interval_bands, combination.point_weights = originals[:2]  # type: ignore[assignment]
        combination.DirectModel.predict = originals[2]  # type: ignore[method-assign]
    return {"set": name, "window": label, "calls": calls}


Weights = Callable[..., tuple[np.ndarray, np.ndarray, dict[int, str]]]
Bands = Callable[..., tuple[np.ndarray, np.ndarray, float, float]]


def score(window: dict[str, object], weights: Weights, bands: Bands) -> tuple[float, float]:
    """(MAE over the better seasonal naive's, coverage) of the window's 7 forecasts under the variants."""
    errors, naive_errors, hits = [], [], []
    for call in window["calls"]:  # type: ignore[union-attr]
        w_args, b_args = dict(call["weights"]), dict(call["bands"])
        grid, future = b_args["grid"], b_args["future"]
        # the members are rebuilt from the recorded model forecasts, so a recording outlives member changes
        pairs, _ = combination.backtest_pairs(grid, int(w_args["origin_day"].max()) + 1)
        preds = w_args["preds"] = combination.candidates(grid, pairs, w_args["preds"][:, 0])
        _, per_series, _ = weights(**w_args)
        cols = w_args["cols"]
        combined = np.nansum(preds * per_series[cols], axis=1)
        f_cols = future["series"].to_numpy()
        model = call.get("model_future", np.zeros(len(future)))
        if len(model) != len(future):  # no final fit was made (no weight on the model)
            model = np.zeros(len(future))
        out = combination.candidates(grid, future, model)
        point = np.maximum((out * per_series[f_cols]).sum(axis=1), 0.0)
        lower, upper, _, _ = bands(**(b_args | {"combined": combined, "point": point}))
        truth = call["truth"]
        ok = ~np.isnan(truth)
        errors.append(np.abs(truth - point)[ok])
        naive_errors.append([np.abs(truth - n)[ok] for n in call["naives"]])
        hits.append(((truth >= lower) & (truth <= upper))[ok])
    naive = min(np.concatenate([n[k] for n in naive_errors]).mean() for k in (0, 1))
    return float(np.concatenate(errors).mean() / naive), float(np.concatenate(hits).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", default="tuned,held-out", help=f"batches among {traffic_sets.BATCHES}")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--record", type=Path, default=Path("/tmp/traffic_study.pkl"))
    parser.add_argument("--bands", action="store_true", help="also score the band variants (BAND_VARIANTS)")
    args = parser.parse_args()
    batches = args.windows.split(",")
    if args.record.exists():
        windows = pickle.loads(args.record.read_bytes())
    else:
        traffic_sets.wheel()
        tasks = [
            (name, label, end)
            for name, s in traffic_sets.SETS.items()
            for label, end in s.windows().items()
            if traffic_sets.batch_of(label) in batches
        ]
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            windows = list(pool.map(record_window, tasks))
        args.record.write_bytes(pickle.dumps(windows))
    windows = [w for w in windows if traffic_sets.batch_of(str(w["window"])) in batches]
    variants: dict[str, tuple[Weights, Bands]] = {
        "current": (combination.point_weights, combination.interval_bands)
    }
    if args.bands:
        for name, settings in BAND_VARIANTS.items():
            variants[name] = (
                combination.point_weights,
                functools.partial(combination.interval_bands, **settings),
            )
    rows = []
    for w in windows:
        row: dict[str, object] = {"set": w["set"], "window": w["window"]}
        for name, (weights, bands) in variants.items():
            row[f"{name} ratio"], row[f"{name} cov"] = score(w, weights, bands)
        rows.append(row)
    table = pd.DataFrame(rows)
    print(table.to_string(float_format=lambda x: f"{x:.3f}"))
    print(
        table.drop(columns=["set", "window"])
        .agg(["mean", "max", "min"])
        .to_string(float_format="{:.3f}".format)
    )
    for name in variants:
        ratio, cov = table[f"{name} ratio"], table[f"{name} cov"]
        print(
            f"{name}: geometric mean ratio {np.exp(np.log(ratio).mean()):.3f}, {(ratio > 1.0).sum()} of "
            f"{len(table)} weeks above 1.0, {(~cov.between(0.75, 0.85)).sum()} outside 75-85 % coverage"
        )


if __name__ == "__main__":
    main()
