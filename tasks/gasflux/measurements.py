"""Read a drone flight table (.xlsx, .xls, .csv) and validate its columns against the merged config.

Rows with a missing, non-numeric or out-of-range value in a required or gas column are dropped and
counted per column (the flight's turn-arounds and sensor warm-up routinely produce a few); when more
than ``validation.max_dropped_fraction`` of the rows would go, or ``validation.out_of_range`` is
``error``, the upload is refused instead, with an error naming the worst column, because then the
file is more likely mislabelled (wrong unit, wrong column) than noisy.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.gasflux.config import GasFluxInputError

STAGE = "data_validation"
TIME_COLUMN = "timestamp"
_TIME_ALIASES = ("timestamp", "time", "datetime", "date_time", "utc", "gps_time")
# python-calamine (optional) reads .xlsx ~7x faster than openpyxl: 12 s instead of 80 s for a 50 MB sheet.
_XLSX_ENGINE = "calamine" if importlib.util.find_spec("python_calamine") else "openpyxl"
EXCEL_ENGINES = {".xlsx": _XLSX_ENGINE, ".xlsm": _XLSX_ENGINE, ".xls": "xlrd"}
TEXT_SUFFIXES = (".csv", ".txt")


def _error(message: str, code: str, **details: Any) -> GasFluxInputError:
    return GasFluxInputError(message, stage=STAGE, error_code=code, details=details)


def read_table(path: str | Path) -> pd.DataFrame:
    """Load the first sheet (Excel) or the CSV; column names are stripped, lower-cased, snake-cased."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise _error(f"Data file not found: {path.name}", "FILE_NOT_FOUND", file=path.name)
    try:
        if suffix in EXCEL_ENGINES:
            frame = pd.read_excel(path, sheet_name=0, engine=EXCEL_ENGINES[suffix])
        elif suffix in TEXT_SUFFIXES:
            frame = _read_csv(path)
        else:
            raise _error(
                f"Unsupported data file type '{suffix}'; use .xlsx, .xls or .csv",
                "INVALID_FILE_TYPE",
                file=path.name,
            )
    except GasFluxInputError:
        raise
    except Exception as exc:
        raise _error(f"Cannot read {path.name}: {exc}", "FILE_READ_ERROR", file=path.name) from exc
    frame.columns = [str(c).strip().lower().replace(" ", "_") for c in frame.columns]
    frame = frame.dropna(how="all")
    if frame.empty:
        raise _error(f"{path.name} contains no data rows", "EMPTY_DATA", file=path.name)
    return frame.reset_index(drop=True)


def _read_csv(path: Path) -> pd.DataFrame:
    options: dict[str, Any] = {"sep": None, "engine": "python"} if _sniff(path) else {}
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return pd.read_csv(path, encoding=encoding, **options)
        except UnicodeDecodeError:
            continue
    raise _error(f"{path.name} is neither UTF-8 nor GB18030 text", "FILE_READ_ERROR", file=path.name)


def _sniff(path: Path) -> bool:
    """True when the header has no comma (semicolon/tab separated exports need the slow sniffing parser)."""
    with path.open("rb") as handle:
        head = handle.readline()
    return b"," not in head


def validate_frame(
    frame: pd.DataFrame, config: Mapping[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any], list[str]]:
    """Return (clean frame sorted by time, row-count report, warnings) or raise `GasFluxInputError`.

    The clean frame holds ``timestamp`` (datetime64), the required columns and the configured gases that
    are present, all float64.
    """
    required: dict[str, list[float]] = dict(config["required_cols"])
    gases_cfg: dict[str, list[float]] = dict(config["gases"])
    rules = config["validation"]
    warnings: list[str] = []

    missing = [col for col in required if col not in frame.columns]
    if missing:
        names = ", ".join(f"'{c}'" for c in missing)
        raise _error(
            f"Missing required column(s): {names}; found: {', '.join(map(str, frame.columns))}",
            "MISSING_COLUMN",
            columns=missing,
        )
    gases = [gas for gas in gases_cfg if gas in frame.columns]
    absent = [gas for gas in gases_cfg if gas not in frame.columns]
    if absent:
        warnings.append(f"configured gas column(s) not in the data, skipped: {', '.join(absent)}")
    if not gases:
        raise _error(
            f"None of the configured gas columns ({', '.join(gases_cfg)}) is in the data",
            "NO_GAS_COLUMNS",
            columns=list(gases_cfg),
        )

    n_rows = len(frame)
    limits = {**required, **{g: gases_cfg[g] for g in gases}}
    out = pd.DataFrame(index=frame.index)
    bad_format: dict[str, int] = {}
    missing_values: dict[str, int] = {}
    out_of_range: dict[str, int] = {}
    drop = np.zeros(n_rows, dtype=bool)
    for col, (low, high) in limits.items():
        values, n_bad = _numeric(frame[col])
        if n_bad > rules["max_dropped_fraction"] * n_rows or n_bad == n_rows:
            raise _error(
                f"Invalid data format in column '{col}': {n_bad} of {n_rows} values are not numbers",
                "INVALID_DATA_FORMAT",
                column=col,
                invalid_values=n_bad,
            )
        nan = np.isnan(values)
        outside = ~nan & ((values < low) | (values > high))
        if n_bad:
            bad_format[col] = n_bad
        if int(nan.sum()) - n_bad:
            missing_values[col] = int(nan.sum()) - n_bad
        if outside.any():
            out_of_range[col] = int(outside.sum())
            if rules["out_of_range"] == "error":
                raise _error(
                    f"Column '{col}' has {int(outside.sum())} value(s) outside [{low:g}, {high:g}]",
                    "DATA_OUT_OF_RANGE",
                    column=col,
                    rows=int(outside.sum()),
                    range=[low, high],
                )
        drop |= nan | outside
        out[col] = values

    times, n_bad_time, synthetic = _timestamps(frame, rules["assumed_sample_rate_hz"])
    if synthetic:
        warnings.append(f"no timestamp column: samples assumed {rules['assumed_sample_rate_hz']:g} Hz apart")
    if n_bad_time:
        bad_format[TIME_COLUMN] = n_bad_time
    drop |= np.isnat(times)
    out.insert(0, TIME_COLUMN, times)

    n_drop = int(drop.sum())
    if n_drop > rules["max_dropped_fraction"] * n_rows:
        causes = {**missing_values}
        for source in (bad_format, out_of_range):
            for col, count in source.items():
                causes[col] = causes.get(col, 0) + count
        worst = max(causes, key=causes.get)  # type: ignore[arg-type]
        code = (
            "INVALID_DATA_FORMAT" if worst in bad_format or worst in missing_values else "DATA_OUT_OF_RANGE"
        )
        raise _error(
            f"{n_drop} of {n_rows} rows are invalid (limit {rules['max_dropped_fraction']:.0%}); "
            f"worst column '{worst}' with {causes[worst]} bad value(s)",
            code,
            column=worst,
            rows=n_drop,
        )
    out = out.loc[~drop]
    if len(out) < rules["min_rows"]:
        raise _error(
            f"Only {len(out)} valid rows; at least {rules['min_rows']} are needed",
            "INSUFFICIENT_DATA",
            rows=len(out),
        )
    if not out[TIME_COLUMN].is_monotonic_increasing:
        warnings.append("rows were not in time order; sorted by timestamp")
        out = out.sort_values(TIME_COLUMN, kind="stable")
    out["winddir"] = np.mod(out["winddir"].to_numpy(), 360.0)
    out = out.reset_index(drop=True)
    report = {
        "input": n_rows,
        "valid": len(out),
        "dropped": n_drop,
        "dropped_missing": missing_values,
        "dropped_invalid_format": bad_format,
        "dropped_out_of_range": out_of_range,
        "gases": gases,
        "gases_absent": absent,
    }
    return out, report, warnings


def _numeric(series: pd.Series) -> tuple[np.ndarray, int]:
    """Float values and the number of non-empty cells that are not numbers (text in a numeric column)."""
    if pd.api.types.is_bool_dtype(series):
        return series.astype(float).to_numpy(), 0
    if pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=float, na_value=np.nan), 0
    text = series.astype("string").str.strip()
    values = pd.to_numeric(text.str.replace(",", ".", regex=False), errors="coerce")
    empty = text.isna() | (text == "")
    n_bad = int((values.isna() & ~empty).sum())
    return values.to_numpy(dtype=float, na_value=np.nan), n_bad


def _timestamps(frame: pd.DataFrame, rate_hz: float) -> tuple[np.ndarray, int, bool]:
    """datetime64[ns] per row, the count of unparseable cells, and whether the times were synthesised."""
    column = next((c for c in _TIME_ALIASES if c in frame.columns), None)
    if column is None:
        start = np.datetime64("2000-01-01T00:00:00", "ns")
        step = np.int64(round(1e9 / rate_hz))
        return start + np.arange(len(frame), dtype=np.int64) * step, 0, True
    raw = frame[column]
    if pd.api.types.is_datetime64_any_dtype(raw):
        parsed = pd.to_datetime(raw)
    elif pd.api.types.is_numeric_dtype(raw):
        unit = "ms" if raw.abs().max() > 1e11 else "s"
        parsed = pd.to_datetime(raw, unit=unit, errors="coerce")
    else:
        parsed = pd.to_datetime(raw.astype("string").str.strip(), errors="coerce", format="mixed")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    values = parsed.to_numpy(dtype="datetime64[ns]")
    n_bad = int(np.isnat(values).sum() - raw.isna().sum())
    return values, max(n_bad, 0), False
