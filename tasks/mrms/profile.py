"""003 MRMS datasets: reading an uploaded CSV or Parquet table and profiling it for the analysis flow.

The profile is what a data scientist checks first: column types, missing values, and, for the target,
class balance (classification) or the direction and strength of its trend (trend analysis).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd

from storage.filesystems import Storage
from storage.mrms.domain import Purpose

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
MAX_PROFILED_COLUMNS = 200


class DatasetError(ValueError):
    """The dataset cannot be read or does not fit the project (a reason for status 8 or 7)."""


def format_of(filename: str, declared: str | None = None) -> str:
    if declared:
        if declared.lower() not in set(FORMATS.values()):
            raise DatasetError(f"format must be csv or parquet, got {declared!r}")
        return declared.lower()
    for suffix, name in FORMATS.items():
        if filename.lower().endswith(suffix):
            return name
    raise DatasetError(f"cannot tell the format of {filename!r}: name it .csv or .parquet, or send format")


def read_columns(storage: Storage, path: str, file_format: str) -> list[str]:
    """The header only, to check an upload before accepting it."""
    try:
        with storage.open(path, "rb") as handle:
            if file_format == "parquet":
                import pyarrow.parquet as pq

                return list(pq.read_schema(handle).names)
            return [str(c) for c in pd.read_csv(handle, nrows=5).columns]
    except Exception as exc:  # pandas and pyarrow raise many types for a broken file
        raise DatasetError(f"the file is not a readable {file_format} table: {exc}") from exc


def read_dataset(storage: Storage, dataset: dict[str, Any]) -> pd.DataFrame:
    path = storage.path(dataset["path"])
    try:
        with storage.open(path, "rb") as handle:
            data = handle.read()
        if dataset["file_format"] == "parquet":
            frame = pd.read_parquet(io.BytesIO(data))
        else:
            frame = pd.read_csv(io.BytesIO(data))
    except Exception as exc:
        raise DatasetError(f"dataset {dataset['dataset_id']!r} cannot be read: {exc}") from exc
    if dataset["target"] not in frame.columns:
        raise DatasetError(f"dataset {dataset['dataset_id']!r} has no target column {dataset['target']!r}")
    if frame.empty:
        raise DatasetError(f"dataset {dataset['dataset_id']!r} has no rows")
    return frame


def _number(value: Any) -> float | None:
    value = float(value)
    return round(value, 6) if np.isfinite(value) else None


def _column_profile(series: pd.Series) -> dict[str, Any]:
    missing = int(series.isna().sum())
    info: dict[str, Any] = {
        "dtype": str(series.dtype),
        "kind": "numeric" if pd.api.types.is_numeric_dtype(series) else "categorical",
        "missing": missing,
        "missing_share": round(missing / max(len(series), 1), 6),
        "unique": int(series.nunique(dropna=True)),
    }
    if info["kind"] == "numeric" and series.notna().any():
        described = series.astype(float).describe()
        info.update({k: _number(described[k]) for k in ("min", "max", "mean", "std") if k in described})
    return info


def _class_balance(target: pd.Series) -> dict[str, Any]:
    counts = target.dropna().astype(str).value_counts()
    if counts.empty:
        raise DatasetError("the target column has no values")
    return {
        "classes": {str(k): int(v) for k, v in counts.items()},
        "n_classes": len(counts),
        "majority_share": round(float(counts.iloc[0] / counts.sum()), 6),
        "balance_ratio": round(float(counts.iloc[-1] / counts.iloc[0]), 6),  # minority / majority
    }


def _trend(frame: pd.DataFrame, target: str, time_column: str | None) -> dict[str, Any]:
    values = pd.to_numeric(frame[target], errors="coerce")
    if values.notna().sum() < 2:
        raise DatasetError(f"trend analysis needs a numeric target; {target!r} has under two numbers")
    if time_column and time_column in frame.columns:
        order = pd.to_datetime(frame[time_column], errors="coerce").argsort(kind="stable")
        values = values.iloc[np.asarray(order)]
    y = values.dropna().to_numpy(dtype=float)
    x = np.arange(len(y), dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    fitted = slope * x + intercept
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float(((y - fitted) ** 2).sum()) / total if total > 0 else 0.0
    spread = float(y.std()) or 1.0
    relative = slope * len(y) / spread  # change over the whole series, in standard deviations
    direction = "flat" if abs(relative) < 0.1 else ("up" if slope > 0 else "down")
    return {
        "slope_per_row": _number(slope),
        "r2": _number(r2),
        "direction": direction,
        "first": _number(y[0]),
        "last": _number(y[-1]),
        "ordered_by": time_column if time_column in frame.columns else "row order",
    }


def profile_frame(
    frame: pd.DataFrame, *, target: str, purpose: Purpose, time_column: str | None = None
) -> dict[str, Any]:
    columns = list(frame.columns)[:MAX_PROFILED_COLUMNS]
    profile: dict[str, Any] = {
        "rows": len(frame),
        "columns": len(frame.columns),
        "target": target,
        "purpose": purpose.value,
        "missing_cells": int(frame.isna().sum().sum()),
        "column_profiles": {str(c): _column_profile(frame[c]) for c in columns},
        "duplicate_rows": int(frame.duplicated().sum()),
    }
    if purpose is Purpose.CLASSIFICATION:
        profile["class_balance"] = _class_balance(frame[target])
    else:
        profile["trend"] = _trend(frame, target, time_column)
    return profile
