"""Synthetic traffic CSVs with a daily and weekly rhythm, the shape a 000 client uploads."""

from __future__ import annotations

import numpy as np
import pandas as pd


def traffic_frame(days: int = 21, freq: str = "1h", sensors: int = 2, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    times = pd.date_range(
        "2024-03-04 00:00", periods=int(pd.Timedelta(days=days) / pd.Timedelta(freq)), freq=freq
    )
    hours = times.hour + times.minute / 60
    daily = 0.6 + 0.8 * np.exp(-((hours - 8) ** 2) / 4) + 0.7 * np.exp(-((hours - 17.5) ** 2) / 5)
    weekly = np.where(times.day_of_week >= 5, 0.6, 1.0)
    frame = pd.DataFrame({"time": times.strftime("%Y-%m-%d %H:%M:%S")})
    for k in range(sensors):
        level = 300 * (k + 1)
        frame[f"road_{k + 1}"] = np.round(level * daily * weekly * rng.lognormal(0, 0.05, len(times)), 1)
    return frame


def traffic_csv(**kwargs: object) -> bytes:
    return traffic_frame(**kwargs).to_csv(index=False).encode()  # type: ignore[arg-type]
