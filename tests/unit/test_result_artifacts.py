"""The result-artifact builders: keys, table columns and values, markdown content, no credentials."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from api_bridge.run_names import MAX_LENGTH, run_name
from tasks import result_artifacts as ra
from tasks.dataflow.artifacts import dataflow_artifacts
from tasks.gasflux.artifacts import gasflux_artifacts
from tasks.mrms.artifacts import STEP_COLUMNS, mrms_artifacts
from tasks.offline.artifacts import offline_artifacts
from tasks.traffic.artifacts import _thin, chart_markdown, traffic_artifacts


def _by_key(specs: list[ra.ArtifactSpec]) -> dict[str, ra.ArtifactSpec]:
    keys = [s.key for s in specs]
    assert len(keys) == len(set(keys)), keys
    return {s.key: s for s in specs}


def _traffic_inputs(days: int = 21, horizon: int = 24) -> dict:
    times = pd.date_range("2024-03-04", periods=days * 24, freq="1h")
    history = pd.DataFrame({"time": times, "road_1": np.arange(len(times), dtype=float)})
    history.loc[10:12, "road_1"] = np.nan
    f_times = pd.date_range(times[-1] + pd.Timedelta(hours=1), periods=horizon, freq="1h")
    point = pd.DataFrame({"time": f_times.strftime("%Y-%m-%d %H:%M:%S"), "road_1": np.full(horizon, 5.0)})
    bounds = pd.DataFrame(
        {"time": point["time"], "road_1_lower": np.full(horizon, 4.0), "road_1_upper": np.full(horizon, 6.0)}
    )
    return {
        "summary": {
            "rows": len(times),
            "interval_seconds": 3600,
            "start": "a",
            "end": "b",
            "filled_share": {"road_1": 0.25},
        },
        "config": {"horizon": None, "interval_level": 0.8, "holiday_country": "CN"},
        "metrics": {
            "road_1": {
                "method": "model",
                "mase": 0.31,
                "wape": 0.05,
                "mae": 2.5,
                "backtest_points": 168,
                "candidates": {},
            }
        },
        "history": history,
        "point": point,
        "bounds": bounds,
    }


def test_traffic_artifacts_table_summary_chart_and_links() -> None:
    specs = _by_key(
        traffic_artifacts(**_traffic_inputs(), base_url="http://bridge:8000/", work_id="w-1", seconds=3.2)
    )
    assert set(specs) == set(ra.KEYS["traffic-forecast"])
    table = specs["traffic-forecast-backtest"].table
    assert table == [
        {
            "series": "road_1",
            "method": "model",
            "mase": 0.31,
            "wape": 0.05,
            "mae": 2.5,
            "backtest_points": 168,
            "filled_share": 0.25,
        }
    ]
    summary = specs["traffic-forecast-summary"].markdown or ""
    for text in ("24 steps", "1 day", "80%", "road_1: 25.0%", "3.2 s", "| road_1 | model | 0.31 | 0.05 |"):
        assert text in summary, text
    assert "http://bridge:8000/static/download/w-1_bounds.csv" in summary
    assert specs["traffic-forecast-file"].link == "http://bridge:8000/static/download/w-1.csv"
    assert specs["traffic-forecast-bounds-file"].link == "http://bridge:8000/static/download/w-1_bounds.csv"


def test_traffic_without_a_legacy_id_has_no_links() -> None:
    keys = {s.key for s in traffic_artifacts(**_traffic_inputs(), base_url="http://b", work_id=None)}
    assert keys == {"traffic-forecast-backtest", "traffic-forecast-summary", "traffic-forecast-chart"}


def test_chart_is_a_valid_svg_of_two_weeks_forecast_and_band() -> None:
    inputs = _traffic_inputs(days=30)
    markdown = chart_markdown(inputs["history"], inputs["point"], inputs["bounds"], 0.8)
    images = re.findall(r"!\[[^\]]*\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert len(images) == 1
    svg = ET.fromstring(base64.b64decode(images[0]))
    ns = "{http://www.w3.org/2000/svg}"
    paths = svg.findall(f"{ns}path")
    assert len(paths) == 2  # observed and forecast
    observed = paths[0].get("d") or ""
    assert observed.count("M") == 1  # the gap (NaN) is older than two weeks, so not drawn
    assert observed.count("L") == 14 * 24 - 1  # two weeks of hourly points, one line
    assert svg.find(f"{ns}polygon") is not None  # the band
    assert "80% interval" in ET.tostring(svg, encoding="unicode")


def test_chart_thins_long_lines_and_keeps_gaps() -> None:
    times = np.arange(5000).astype("datetime64[m]")
    values = np.arange(5000, dtype=float)
    values[:1000] = np.nan
    t, v = _thin(times, values, limit=100)
    assert len(t) == len(v) == 100
    assert np.isnan(v[:20]).all() and np.isfinite(v[20:]).all()


def test_gasflux_artifacts_rates_wind_curtain_and_every_file() -> None:
    summary = {
        "job_id": "j-1",
        "source_name": "flight.xlsx",
        "gases": ["ch4", "co2"],
        "emission_rates_kg_h": {"ch4": 12.5, "co2": 900.0},
        "uncertainty_kg_h": {"ch4": 1.5, "co2": 80.0},
        "warnings": ["only 1 transect"],
        "processing_time_seconds": 9.5,
        "files": [
            {"rel": "f.processed/run/f.processed_ch4_report.html", "name": "f.processed_ch4_report.html"},
            {"rel": "f.processed/run/f.processed_co2_report.html", "name": "f.processed_co2_report.html"},
            {"rel": "f.processed/run/f.processed_data.csv", "name": "f.processed_data.csv"},
            {"rel": "f.processed/run/f.processed_output_vars.json", "name": "f.processed_output_vars.json"},
            {"rel": "f.processed/run/f.processed_config.yaml", "name": "f.processed_config.yaml"},
        ],
    }
    output_vars = {
        "emission_rates": {"ch4": {"uncertainty_kriging_kg_h": 1.0, "uncertainty_jackknife_kg_h": 1.1}},
        "transect_flux_kg_h_m": {"total_kg_h": {"ch4": 12.0}},
        "wind": {"windspeed_mean_m_s": 4.2, "negative_normal_wind_fraction": 0.05},
        "geometry": {"n_transects": 6, "curtain_length_m": 420.0},
        "observations": {"bins": 30},
    }
    specs = _by_key(gasflux_artifacts(summary=summary, output_vars=output_vars, base_url="http://b"))
    assert set(specs) == {
        "gasflux-emission-rates",
        "gasflux-summary",
        "gasflux-report-ch4",
        "gasflux-report-co2",
        "gasflux-data-csv",
        "gasflux-output-json",
        "gasflux-config-yaml",
    }
    rows = specs["gasflux-emission-rates"].table or []
    assert rows[0] == {
        "gas": "ch4",
        "emission_rate_kg_h": 12.5,
        "uncertainty_kg_h": 1.5,
        "uncertainty_kriging_kg_h": 1.0,
        "uncertainty_jackknife_kg_h": 1.1,
        "transect_integration_kg_h": 12.0,
    }
    assert rows[1]["gas"] == "co2" and rows[1]["emission_rate_kg_h"] == 900.0
    text = specs["gasflux-summary"].markdown or ""
    for fragment in ("| ch4 | 12.5 | 1.5 |", "4.2 m/s", "5.0%", "420 m", "only 1 transect", "9.5 s"):
        assert fragment in text, fragment
    assert specs["gasflux-data-csv"].link == "http://b/download/j-1/f.processed/run/f.processed_data.csv"


def test_mrms_artifacts_steps_best_step_and_model_link() -> None:
    steps = [
        {"step": 1, "loss": 0.6, "accuracy": 0.7, "val_loss": 0.5, "val_accuracy": 0.8, "extra": 1},
        {"step": 2, "loss": 0.4, "accuracy": 0.9, "val_loss": 0.3, "val_accuracy": 0.92},
        {"step": 3, "loss": 0.3, "accuracy": 0.95, "val_loss": 0.35, "val_accuracy": 0.91},
    ]
    summary = {"steps": 3, "stopped_early": True, "final": steps[2], "sha256": "abc"}
    specs = _by_key(
        mrms_artifacts(
            learn_hist_no="h 1",
            summary=summary,
            steps=steps,
            early_stop='{"k": 1}',
            algorithm="sgd_classifier",
            base_url="http://b",
        )
    )
    assert set(specs) == set(ra.KEYS["mrms-training"])
    assert specs["mrms-training-steps"].table == [{k: s[k] for k in STEP_COLUMNS} for s in steps]
    text = specs["mrms-training-summary"].markdown or ""
    assert "stopped early after step 3" in text and "| best step | 2 (val_loss 0.3" in text
    assert specs["mrms-model"].link == "http://b/mrms/model_download?learn_hist_no=h%201"
    ran_all = mrms_artifacts(
        learn_hist_no="h",
        summary={"steps": 3, "stopped_early": False},
        steps=steps,
        early_stop=None,
        algorithm=None,
        base_url=None,
    )
    assert "ran all 3 steps" in (ran_all[1].markdown or "") and len(ran_all) == 2


def test_dataflow_artifacts_steps_lineage_target_without_credentials() -> None:
    stats = {
        "rows_read": 10,
        "rows_written": 4,
        "reads": ["file:///data/in.csv"],
        "writes": ["postgresql://user:secret@db:5432/x#out"],
        "steps": [
            {"step": "source", "kind": "csv", "rows_in": None, "rows_out": 10},
            {"step": "transform_filter", "kind": "filter", "rows_in": 10, "rows_out": 4},
            {"step": "target", "kind": "postgresql", "rows_in": 4, "rows_out": 4},
        ],
    }
    specs = _by_key(
        dataflow_artifacts(dataflow_id=7, name="daily", execution_id="exec_7_1", run_id="r1", stats=stats)
    )
    assert set(specs) == set(ra.KEYS["dataflow-run"])
    assert specs["dataflow-steps"].table == stats["steps"]
    assert specs["dataflow-lineage"].table == [
        {"from": "run:r1", "edge": "OF", "to": "dataflow:7"},
        {"from": "dataflow:7", "edge": "READS", "to": "file:///data/in.csv"},
        {"from": "dataflow:7", "edge": "WRITES", "to": "postgresql://db:5432/x#out"},
    ]
    text = specs["dataflow-summary"].markdown or ""
    assert "Target: `postgresql://db:5432/x#out`" in text and "secret" not in text and "daily" in text


def test_offline_artifact_names_locations_never_credentials() -> None:
    summary = {
        "taskId": 5,
        "algorithm": "traffic-forecast",
        "algorithm_run": "r2",
        "input_files": ["a.csv"],
        "input_bytes": 10,
        "output_folder": "out/5",
        "output_files": ["forecast.csv"],
    }
    inputs = {
        "fileSystemType": "CEPH",
        "host": "s3",
        "port": 9000,
        "userName": "AKIAKEY",
        "inputPath": "b#in",
    }
    outputs = {
        "fileSystemType": "CEPH",
        "host": "s3",
        "port": 9000,
        "userName": "AKIAKEY",
        "outputPath": "b#out",
    }
    (spec,) = offline_artifacts(
        summary=summary,
        input_info=inputs,
        output_info=outputs,
        inner_summary={"metrics": {"road_1": {"mase": 0.3}}, "files": list(range(30))},
    )
    assert spec.key == "offline-task-summary"
    text = spec.markdown or ""
    assert "`CEPH://s3:9000/b#in`" in text and "`CEPH://s3:9000/out/5`" in text and "forecast.csv" in text
    assert '"mase": 0.3' in text and "20 more" in text
    assert "AKIAKEY" not in text


def test_keys_are_what_prefect_accepts() -> None:
    for keys in ra.KEYS.values():
        for key in keys:
            assert re.fullmatch(r"[a-z0-9-]+", key.replace("<gas>", "ch4")), key
    with pytest.raises(ValueError):
        ra.ArtifactSpec("markdown", "Not_A_Key", "x", markdown="")
    assert ra.key_part("C2H6 (ppm)") == "c2h6-ppm"


def test_publish_never_raises_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    warned: list[str] = []
    monkeypatch.setattr(ra, "_warn", warned.append)

    def broken() -> list[ra.ArtifactSpec]:
        raise OSError("storage is gone")

    assert ra.publish(broken, "test job") is False
    ra.publish_in_background(broken, "test job")()
    assert warned == ["result artifacts of test job skipped: OSError: storage is gone"] * 2


def test_run_names_keep_the_legacy_id_whole() -> None:
    assert run_name("gasflux", "flight.xlsx", "id-1") == "gasflux-flight.xlsx-id-1"
    assert run_name("offline", "traffic-forecast", None, 7) == "offline-traffic-forecast-7"
    long = run_name("dataflow", "x" * 500, "exec_1_2")
    assert len(long) <= MAX_LENGTH and long.endswith("-exec_1_2") and "…" in long
    assert run_name("a", "b\x00\nc") == "a-bc"
