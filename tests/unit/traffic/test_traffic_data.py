"""Upload parsing: the grid invariant (gaps stay as NaN rows) and one error reason per kind of bad file."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.traffic.data import TrafficDataError, load_traffic_csv, series_from_csv, series_to_csv


def _flows(periods: int, freq: str, start: str = "2024-03-04") -> pd.DataFrame:
    """Two roads with a daily and weekly shape so values are distinguishable by position."""
    index = pd.date_range(start, periods=periods, freq=freq)
    hour = index.hour + index.minute / 60
    daily = 100 + 80 * np.sin(2 * np.pi * (hour - 6) / 24)
    weekly = np.where(index.day_of_week >= 5, 0.6, 1.0)
    return pd.DataFrame({"time": index, "road_a": daily * weekly, "road_b": 2 * daily * weekly})


def _csv(frame: pd.DataFrame, time_format: str = "%Y-%m-%d %H:%M:%S", **kwargs: object) -> bytes:
    out = frame.copy()
    out[out.columns[0]] = pd.DatetimeIndex(out[out.columns[0]]).strftime(time_format)
    return out.to_csv(index=False, **kwargs).encode(kwargs.get("encoding", "utf-8"))


def test_hourly_gaps_stay_as_missing_rows_and_are_reported() -> None:
    frame = _flows(24 * 7, "h")
    gappy = frame.drop(index=range(30, 40))
    series = load_traffic_csv(_csv(gappy))
    assert series.interval == pd.Timedelta(hours=1)
    assert len(series.frame) == 24 * 7
    assert series.frame.iloc[30:40].isna().all().all()
    assert series.frame.iloc[40]["road_a"] == pytest.approx(frame.iloc[40]["road_a"])
    expected = pytest.approx(10 / 168, abs=1e-6)
    assert series.filled_share == {"road_a": expected, "road_b": expected}
    assert series.summary()["filled_share"] == series.filled_share


def test_five_minute_interval_and_shuffled_rows() -> None:
    frame = _flows(288 * 3, "5min").sample(frac=1.0, random_state=1)
    series = load_traffic_csv(_csv(frame))
    assert series.interval == pd.Timedelta(minutes=5)
    assert series.steps_per_day == 288
    assert series.frame.index.is_monotonic_increasing
    assert series.filled_share == {"road_a": 0.0, "road_b": 0.0}


def test_duplicate_timestamps_removed_first_value_kept() -> None:
    frame = _flows(24 * 3, "h")
    doubled = pd.concat([frame, frame.iloc[5:8].assign(road_a=-1.0)]).reset_index(drop=True)
    series = load_traffic_csv(_csv(doubled))
    assert series.duplicates_removed == 3
    assert len(series.frame) == 72
    assert (series.frame["road_a"] >= 0).all()


def test_chinese_gbk_tab_separated_with_unpadded_times_round_trips_the_format() -> None:
    frame = _flows(24 * 3, "h").rename(columns={"time": "时间", "road_a": "路口A", "road_b": "路口B"})
    raw = _csv(frame, "%Y/%-m/%-d %-H:%M", sep="\t", encoding="gb18030")
    series = load_traffic_csv(io.BytesIO(raw))
    assert series.time_column == "时间"
    assert series.columns == ["路口A", "路口B"]
    assert series.format_times(series.frame.index[:2]) == ["2024/3/4 0:00", "2024/3/4 1:00"]


def test_time_column_found_by_parsing_when_name_is_unhelpful(tmp_path: Path) -> None:
    frame = _flows(24 * 3, "h")[["road_a", "time"]].rename(columns={"time": "when"})
    path = tmp_path / "upload.csv"
    path.write_bytes(frame.to_csv(index=False).encode())
    series = load_traffic_csv(path)
    assert series.time_column == "when"
    assert series.columns == ["road_a"]


def test_index_column_from_exports_is_not_a_flow() -> None:
    raw = _flows(24 * 3, "h").to_csv().encode()
    assert load_traffic_csv(raw).columns == ["road_a", "road_b"]


def test_jittered_timestamps_snap_to_the_grid() -> None:
    frame = _flows(24 * 3, "h")
    frame["time"] = frame["time"] + pd.to_timedelta(np.tile([0, 2, -3], 24), unit="s")
    series = load_traffic_csv(_csv(frame))
    assert series.interval == pd.Timedelta(hours=1)
    assert len(series.frame) == 72 and series.frame.notna().all().all()


def test_a_trailing_total_row_is_dropped_and_counted() -> None:
    raw = (_csv(_flows(24 * 3, "h")).decode() + "合计,12345,23456\n").encode("gb18030")
    series = load_traffic_csv(raw)
    assert series.rows_dropped == 1
    assert len(series.frame) == 72
    assert series.frame["road_a"].max() < 12345


def test_serialised_series_round_trips() -> None:
    frame = _flows(24 * 4, "h").drop(index=[3, 4])
    series = load_traffic_csv(_csv(frame, "%Y/%m/%d %H:%M"))
    back = series_from_csv(series_to_csv(series))
    pd.testing.assert_frame_equal(back.frame, series.frame)
    assert back.summary() == series.summary()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(os.urandom(4096).replace(b"\x00", b"\x01") + b"\x00", "not_csv", id="binary"),
        pytest.param(b"PK\x03\x04" + b"x" * 100, "not_csv", id="xlsx"),
        pytest.param(b"just some words\nwithout any structure\n", "not_csv", id="garbage-text"),
        pytest.param(b"", "empty", id="empty"),
        pytest.param(b"time,flow\n", "empty", id="header-only"),
        pytest.param(b"name,flow\nalpha,1\nbeta,2\n", "no_time_column", id="no-time"),
        pytest.param(b"time,flow\nmonday,1\ntuesday,2\n", "unparseable_dates", id="bad-dates"),
        pytest.param(
            b"time,note\n2024-01-01 00:00,a\n2024-01-01 01:00,b\n", "no_numeric_column", id="no-number"
        ),
        pytest.param(b"time,flow\n2024-01-01 00:00,1\n2024-01-01 01:00,2\n", "too_short", id="too-short"),
        pytest.param(
            b"time,flow\n2024-01-01 00:00,1\n2024-01-01 00:07,2\n2024-01-01 00:14,3\n",
            "unsupported_interval",
            id="7-minutes",
        ),
    ],
)
def test_bad_uploads_raise_one_error_class_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(TrafficDataError) as caught:
        load_traffic_csv(raw)
    assert caught.value.reason == reason
    assert isinstance(caught.value, ValueError)
    assert str(caught.value)


def test_too_short_names_the_minimum() -> None:
    raw = _csv(_flows(47, "h"))
    with pytest.raises(TrafficDataError, match="48 rows") as caught:
        load_traffic_csv(raw)
    assert caught.value.reason == "too_short"
    assert load_traffic_csv(_csv(_flows(48, "h"))).frame.shape == (48, 2)


def test_size_limit() -> None:
    raw = _csv(_flows(24 * 3, "h"))
    with pytest.raises(TrafficDataError) as caught:
        load_traffic_csv(raw, max_bytes=100)
    assert caught.value.reason == "too_large"


def test_many_unparseable_dates_are_refused_not_dropped() -> None:
    frame = _flows(24 * 4, "h")
    text = _csv(frame).decode().splitlines()
    text[10:20] = [f"not a date,{i},{i}" for i in range(10)]
    with pytest.raises(TrafficDataError) as caught:
        load_traffic_csv("\n".join(text).encode())
    assert caught.value.reason == "unparseable_dates"
