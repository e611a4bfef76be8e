"""Stage functions, persisted state and the run directory the document specifies."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from plotly.offline import get_plotlyjs

from tasks.gasflux import pipeline as gp
from tasks.gasflux.config import GasFluxInputError
from tests.support.plume import PlumeFlight, simulate


@pytest.fixture(scope="module")
def flight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("upload") / "08_34_01_5m.xlsx"
    simulate(PlumeFlight(n_transects=10, curtain_length_m=400.0)).frame.to_excel(path, index=False)
    return path


def test_stages_persist_json_state_and_write_the_documented_run(flight: Path, tmp_path: Path) -> None:
    work, out = tmp_path / "work", tmp_path / "out"
    state = gp.data_validation(flight, "strategies: {background: algorithm}", work)
    assert (work / gp.VALIDATED).is_file()
    for stage in (gp.background_correction, gp.flux_calculation, gp.spatial_interpolation):
        state = json.loads(json.dumps(state))
        state = stage(state)
    assert state["stage"] == "spatial_interpolation"
    assert set(state["results"]) == {"ch4", "co2", "c2h6"}
    assert (work / "kriging_ch4.npz").is_file()
    state = gp.report_generation(json.loads(json.dumps(state)), out, timestamp="2026-01-14_10-33-29-961698")

    run = "08_34_01_5m.processed/2026-01-14_10-33-29-961698_processing_run"
    name = "08_34_01_5m.processed"
    assert state["files"] == [
        [f"{run}/{name}_ch4_report.html", "report"],
        [f"{run}/{name}_co2_report.html", "report"],
        [f"{run}/{name}_c2h6_report.html", "report"],
        [f"{run}/{name}_data.csv", "data"],
        [f"{run}/{name}_config.yaml", "config"],
        [f"{run}/{name}_output_vars.json", "metadata"],
    ]
    for rel, kind in state["files"]:
        assert (out / rel).is_file(), rel
        if kind == "report":
            page = (out / rel).read_text(encoding="utf-8")
            assert len(page.encode("utf-8")) < 5_000_000
            assert page.count(get_plotlyjs()[:200]) == 1
            assert "<script src=" not in page
    meta = json.loads((out / f"{run}/{name}_output_vars.json").read_text())
    ch4 = meta["emission_rates"]["ch4"]
    assert ch4["emission_rate_kg_h"] > 0 and ch4["uncertainty_kg_h"] > 0
    assert meta["units"]["emission_rate"] == "kg/h"
    assert {"plane_angle_deg", "grid", "wind", "row_counts"} <= set(meta)
    config = yaml.safe_load((out / f"{run}/{name}_config.yaml").read_text())
    assert config == state["config"]
    data = pd.read_csv(out / f"{run}/{name}_data.csv")
    assert {"ch4_normalised", "ch4_kg_h_m2", "x", "transect", "windspeed_normal"} <= set(data.columns)
    assert len(data) == state["row_counts"]["valid"]


def test_run_all_timestamp_format_and_errors(flight: Path, tmp_path: Path) -> None:
    state = gp.run_all(flight, None, tmp_path)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-\d{6}_processing_run", Path(state["run_dir"]).name)
    assert list(state["timings_s"]) == list(gp.STAGES)

    broken = tmp_path / "broken.csv"
    pd.read_excel(flight).drop(columns=["pressure"]).to_csv(broken, index=False)
    with pytest.raises(GasFluxInputError) as err:
        gp.run_all(broken, None, tmp_path)
    assert err.value.error_details() == {"stage": "data_validation", "error_code": "MISSING_COLUMN",
                                         "columns": ["pressure"]}  # fmt: skip


def _write_xls(frame: pd.DataFrame, path: Path) -> None:
    """The legacy Excel 97 format, written with xlwt (pandas cannot write .xls any more)."""
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("flight")
    when = xlwt.easyxf(num_format_str="yyyy-mm-dd hh:mm:ss")
    for col, name in enumerate(frame.columns):
        sheet.write(0, col, name)
    for row, values in enumerate(frame.itertuples(index=False), start=1):
        for col, value in enumerate(values):
            if isinstance(value, pd.Timestamp):
                sheet.write(row, col, value.to_pydatetime(), when)
            else:
                sheet.write(row, col, float(value))
    book.save(str(path))


def test_an_xls_upload_gives_the_rates_of_the_same_flight_as_xlsx(flight: Path, tmp_path: Path) -> None:
    frame = pd.read_excel(flight)
    legacy = tmp_path / "08_34_01_5m.xls"
    _write_xls(frame, legacy)
    from_xls = gp.run_all(legacy, None, tmp_path / "xls")
    from_xlsx = gp.run_all(flight, None, tmp_path / "xlsx")
    assert from_xls["row_counts"] == from_xlsx["row_counts"]
    assert set(from_xls["results"]) == set(from_xlsx["results"]) == {"ch4", "co2", "c2h6"}
    for gas, rate in from_xlsx["results"].items():
        expected = rate["emission_rate_kg_h"]
        assert from_xls["results"][gas]["emission_rate_kg_h"] == pytest.approx(expected, rel=1e-9)
