"""Variants of the traffic forecast's direct model, recorded and scored like bench/traffic_study.py (#13).

Why: on the first 30 scored weeks the model member alone averaged 0.776x the better seasonal naive and the
combination 0.759x, and variants of the weights and bands moved the mean by under 0.02, so the model is
the lever left. A variant here replaces both fits of every forecast (`combination.fit_direct`); the
weights and bands are the current ones. Each variant is one recording (5-10 min for the 36 scored weeks
with `--jobs 2`), scored per window as in traffic_study.py.

Variants:
- `current`: the shipped fit (a recording of it is the baseline of the same run);
- `recency:<days>`: training rows weigh half as much for every <days> days their target lies back (level
  shifts such as the 2018-19 federal shutdown should count more than two-year-old weeks);
- `bag:<n>`: the mean of n boosters fitted on differently sampled rows (seeds seed..seed+n-1), n times
  the fit time;
- `log`: the booster learns log1p(value) - log1p(baseline), so weather that scales a whole day is one
  shift (the median is kept under the transform, so the absolute-error loss still targets it);
- `calendar-holidays`: the shipped fit with `ForecastConfig.learn_holidays` off (every public holiday of
  the calendar is a day off, as before 2026-12-04, when learning them was measured with three seeds and
  taken);
- `seed:<n>`: the shipped fit with another random seed (row sampling, early-stopping split): how far a
  variant's result must move before it is more than the model's own randomness.

Usage: python bench/traffic_model_study.py --variant bag:2 --windows tuned,held-out --record /tmp/bag2.pkl
(the other options are traffic_study.py's); variants combine with commas:
--variant bag:2,calendar-holidays,seed:1.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import traffic_study  # noqa: E402
from tasks.traffic import combination  # noqa: E402
from tasks.traffic import forecasting as fc  # noqa: E402


class Bag:
    """Mean of several fitted boosters; `n_iter_` is the first's (the final fit reuses it for all)."""

    def __init__(self, estimators: list[HistGradientBoostingRegressor]) -> None:
        self.estimators = estimators
        self.n_iter_ = estimators[0].n_iter_

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.mean([e.predict(X) for e in self.estimators], axis=0)


def variant_fit(name: str, value: float | None) -> Callable[..., combination.DirectModel]:
    """A `fit_direct` replacement for the variant."""

    def fit(
        grid: fc._Grid, end: int, config: fc.ForecastConfig, rounds: int | None = None
    ) -> combination.DirectModel:
        started = time.perf_counter()
        estimators, rows = [], None
        for b in range(int(value) if name == "bag" else 1):
            seeded = dataclasses.replace(config, seed=config.seed + b)
            rows = combination.training_rows(grid, end, seeded)
            booster = combination.booster(seeded, len(rows.y), grid.values.shape[1], rounds)
            target = rows.y - rows.base
            if name == "log":
                target = np.log1p(np.maximum(rows.y, 0.0)) - np.log1p(np.maximum(rows.base, 0.0))
            weights = 0.5 ** ((end - rows.targets) / grid.day / value) if name == "recency" else None
            with fc.single_thread():
                booster.fit(rows.X.astype("float32"), target.astype("float32"), sample_weight=weights)
            estimators.append(booster)
        estimator = estimators[0] if len(estimators) == 1 else Bag(estimators)
        return combination.DirectModel(
            estimator, rows.scale, rows.constant_columns, time.perf_counter() - started
        )

    return fit


def log_predict(model: combination.DirectModel, grid: fc._Grid, pairs: pd.DataFrame) -> np.ndarray:
    """The `log` variant's forecast: the baseline shifted on the log1p scale."""
    base, delta = model.correction(grid, pairs)
    return np.expm1(np.log1p(np.maximum(base, 0.0)) + delta) * model.scale[pairs["series"].to_numpy()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], add_help=False)
    parser.add_argument(
        "--variant",
        default="current",
        help="comma-separated: current, recency:<days>, bag:<n>, log (one of these three at most), "
        "calendar-holidays, seed:<n>",
    )
    args, rest = parser.parse_known_args()
    parts = [part.partition(":")[::2] for part in args.variant.split(",")]
    known = ("current", "recency", "bag", "log", "calendar-holidays", "seed")
    for name, value in parts:
        if name not in known or (name in ("recency", "bag", "seed")) != bool(value):
            parser.error(f"unknown variant {name}:{value}" if value else f"unknown variant {name}")
    if sum(name in ("recency", "bag", "log") for name, _ in parts) > 1:
        parser.error("at most one of recency, bag and log: each replaces the fit")
    # patched before traffic_study forks its workers, so every recorded forecast uses the variant
    for name, value in parts:
        if name == "calendar-holidays":
            traffic_study.ForecastConfig = functools.partial(  # type: ignore[misc]
                traffic_study.ForecastConfig, learn_holidays=False
            )
        elif name == "seed":
            traffic_study.ForecastConfig = functools.partial(  # type: ignore[misc]
                traffic_study.ForecastConfig, seed=int(value)
            )
        elif name in ("recency", "bag", "log"):
            combination.fit_direct = variant_fit(name, float(value) if value else None)  # type: ignore[assignment]
        if name == "log":
            combination.DirectModel.predict = log_predict  # type: ignore[method-assign]
    sys.argv = [sys.argv[0], *rest]
    traffic_study.main()


if __name__ == "__main__":
    main()
