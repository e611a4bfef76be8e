"""Study of the traffic forecast's interval bands on recorded backtests (issue #13).

Why: the bands are a separate step (`tasks.traffic.combination.interval_bands`) on top of the point
forecast, so band variants can be compared without refitting. This script runs the benchmark's protocol
(bench/traffic_accuracy.py: 7 daily origins per window, horizon 24 h) once, records every call's band
inputs and the truth into a pickle, then scores each band variant's coverage per window in seconds.

Usage: python bench/traffic_bands.py [--windows tuned,held-out] [--jobs 2] [--record path]
Only the batches named are recorded and scored (traffic_sets.BATCHES: tuned, held-out, held-out 2,
held-out 3, held-out 4), so a batch kept for an out-of-sample check stays unseen until the variant is fixed.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from tasks.traffic.forecasting import ForecastConfig  # noqa: E402
from tests.support import traffic_sets  # noqa: E402


def record_window(task: tuple[str, str, str]) -> dict[str, object]:
    """The band inputs of each of the window's 7 forecasts, with the truth of the forecast day."""
    name, label, end = task
    series = traffic_sets.load(name)
    config = ForecastConfig(horizon=HORIZON, interval_level=LEVEL, holiday_country="US")
    calls: list[dict[str, object]] = []
    original = combination.interval_bands

    def capture(*args: object) -> tuple[np.ndarray, np.ndarray, float, float]:
        names = ("grid", "actual", "combined", "cols", "steps", "origin_day", "point", "future", "coverage")
        calls.append(dict(zip(names, args, strict=True)))
        return original(*args)

    combination.interval_bands = capture  # type: ignore[assignment]
    try:
        truths = []
        for k in range(ORIGINS, 0, -1):
            origin = pd.Timestamp(end) - pd.Timedelta(hours=HORIZON * k)
            history = dataclasses.replace(series, frame=series.frame.loc[:origin])
            combination.forecast_combined(history, config, lambda fraction, stage: None)
            truths.append(
                series.frame.iloc[:, 0][origin + series.interval : origin + HORIZON * series.interval]
            )
    finally:
        combination.interval_bands = original  # type: ignore[assignment]
    for call, truth in zip(calls, truths, strict=True):
        call["truth"] = truth.to_numpy()
    return {"set": name, "window": label, "calls": calls}


Variant = Callable[..., tuple[np.ndarray, np.ndarray, float, float]]


def coverage(window: dict[str, object], variant: Variant) -> float:
    hits = []
    for call in window["calls"]:  # type: ignore[union-attr]
        args = {k: v for k, v in call.items() if k != "truth"}
        lower, upper, _, _ = variant(**args)
        truth = call["truth"]
        ok = ~np.isnan(truth)
        hits.append(((truth >= lower) & (truth <= upper))[ok])
    return float(np.concatenate(hits).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", default="tuned,held-out", help=f"batches among {traffic_sets.BATCHES}")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--record", type=Path, default=Path("/tmp/traffic_bands.pkl"))
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
    variants: dict[str, Variant] = {"current": combination.interval_bands}
    rows = [
        {"set": w["set"], "window": w["window"], **{n: coverage(w, v) for n, v in variants.items()}}
        for w in windows
    ]
    print(pd.DataFrame(rows).to_string(float_format=lambda x: f"{x:.1%}"))


if __name__ == "__main__":
    main()
