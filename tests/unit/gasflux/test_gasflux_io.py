"""Reading .csv/.xlsx/.xls and column validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.gasflux.config import GasFluxInputError, merge_config
from tasks.gasflux.measurements import read_table, validate_frame


def _frame(n: int = 100) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-01 10:00", periods=n, freq="1s"),
            "latitude": 54.0 + rng.normal(0, 1e-5, n),
            "longitude": 15.0 + rng.normal(0, 1e-5, n),
            "height_ato": np.arange(n, dtype=np.int64) % 50,
            "windspeed": np.full(n, 5, dtype=np.int64),
            "winddir": np.full(n, 270.0),
            "temperature": np.full(n, 15.0),
            "pressure": np.full(n, 1000),
            "ch4": 1.95 + rng.random(n),
        }
    )


def _config(extra: str = "") -> dict:
    return merge_config("gases: {ch4: [1.5, 500], co2: [300, 5000]}\n" + extra)[0]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_reads_csv_and_xlsx_with_integer_columns_cast(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"Flight 1{suffix}"
    frame = _frame().rename(columns={"ch4": " CH4 "})
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_excel(path, index=False)
    read = read_table(path)
    assert "ch4" in read.columns
    clean, report, warnings = validate_frame(read, _config())
    assert report["valid"] == 100
    assert clean["windspeed"].dtype == np.float64
    assert clean["height_ato"].dtype == np.float64
    assert np.issubdtype(clean["timestamp"].dtype, np.datetime64)
    assert report["gases"] == ["ch4"]
    assert any("co2" in w for w in warnings)


def test_unsupported_and_unreadable_files(tmp_path: Path) -> None:
    txt = tmp_path / "data.json"
    txt.write_text("{}")
    with pytest.raises(GasFluxInputError) as err:
        read_table(txt)
    assert err.value.error_code == "INVALID_FILE_TYPE"
    bad = tmp_path / "data.xls"
    bad.write_bytes(b"not an excel file")
    with pytest.raises(GasFluxInputError) as err:
        read_table(bad)
    assert err.value.error_code == "FILE_READ_ERROR"


def test_missing_column_names_it() -> None:
    with pytest.raises(GasFluxInputError) as err:
        validate_frame(_frame().drop(columns=["temperature"]), _config())
    assert err.value.error_code == "MISSING_COLUMN"
    assert err.value.stage == "data_validation"
    assert "'temperature'" in str(err.value)
    assert err.value.details["columns"] == ["temperature"]


def test_no_gas_column() -> None:
    with pytest.raises(GasFluxInputError) as err:
        validate_frame(_frame().drop(columns=["ch4"]), _config())
    assert err.value.error_code == "NO_GAS_COLUMNS"


def test_text_in_numeric_column_is_invalid_data_format() -> None:
    frame = _frame()
    frame["temperature"] = frame["temperature"].astype(object)
    frame.loc[:40, "temperature"] = "warm"
    with pytest.raises(GasFluxInputError) as err:
        validate_frame(frame, _config())
    assert err.value.error_code == "INVALID_DATA_FORMAT"
    assert "Invalid data format in column 'temperature'" in str(err.value)


def test_few_bad_rows_are_dropped_and_counted() -> None:
    frame = _frame()
    frame["temperature"] = frame["temperature"].astype(object)
    frame.loc[3, "temperature"] = "n/a"
    frame.loc[5, "pressure"] = 1500
    frame.loc[7, "ch4"] = np.nan
    clean, report, _ = validate_frame(frame, _config())
    assert report["valid"] == 97
    assert report["dropped"] == 3
    assert report["dropped_invalid_format"] == {"temperature": 1}
    assert report["dropped_out_of_range"] == {"pressure": 1}
    assert report["dropped_missing"] == {"ch4": 1}
    assert len(clean) == 97


def test_too_many_out_of_range_rows_is_an_error() -> None:
    frame = _frame()
    frame.loc[:30, "windspeed"] = 80
    with pytest.raises(GasFluxInputError) as err:
        validate_frame(frame, _config())
    assert err.value.error_code == "DATA_OUT_OF_RANGE"
    assert err.value.details["column"] == "windspeed"


def test_out_of_range_error_policy() -> None:
    frame = _frame()
    frame.loc[0, "winddir"] = 400
    with pytest.raises(GasFluxInputError) as err:
        validate_frame(frame, _config("validation: {out_of_range: error}"))
    assert err.value.error_code == "DATA_OUT_OF_RANGE"
    assert "winddir" in str(err.value)


def test_timestamps_parsed_sorted_or_synthesised() -> None:
    frame = _frame()
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y/%m/%d %H:%M:%S")
    shuffled = frame.iloc[::-1].reset_index(drop=True)
    clean, _, warnings = validate_frame(shuffled, _config())
    assert clean["timestamp"].is_monotonic_increasing
    assert any("sorted" in w for w in warnings)
    clean, _, warnings = validate_frame(_frame().drop(columns=["timestamp"]), _config())
    assert (np.diff(clean["timestamp"].to_numpy()).astype(np.int64) == 1_000_000_000).all()
    assert any("no timestamp" in w for w in warnings)
