"""Writers of a processing run: one HTML report per gas, the processed CSV, the merged YAML, the JSON vars.

Layout and names follow the GasFlux document: ``<out>/<stem>.processed/<timestamp>_processing_run/`` with
``<stem>.processed_<gas>_report.html``, ``<stem>.processed_data.csv``, ``<stem>.processed_config.yaml``
and ``<stem>.processed_output_vars.json``. Reports open offline: plotly.js (~4.8 MB) is inlined once per
file, so figure data is decimated and sent as float32 to keep each file under 5 MB. The page is the Jinja2
template ``tasks/gasflux/templates/report.html`` (autoescaped).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pyarrow as pa
import pyarrow.csv as pacsv
from plotly.offline import get_plotlyjs

from tasks.gasflux.config import config_to_yaml

PRODUCER = "flowbridge gasflux pipeline 1.0"
TIMESTAMP_FORMAT = "%Y-%m-%d_%H-%M-%S-%f"
MAX_PLOT_POINTS = 1200
MAX_HEATMAP_NODES = 3000
MAX_REPORT_BYTES = 4_990_000
FIGURE_HEIGHT = 420
UNITS = {
    "emission_rate": "kg/h",
    "flux_density": "kg m-2 h-1",
    "concentration": "ppm",
    "distance": "m",
    "windspeed": "m/s",
    "angle": "degrees (azimuth clockwise from north)",
}


def run_names(stem: str, timestamp: str) -> tuple[str, str]:
    """(base file name, run directory relative to the output folder)."""
    name = f"{stem}.processed"
    return name, f"{name}/{timestamp}_processing_run"


def write_run(
    state: Mapping[str, Any], out_dir: str | Path, timestamp: str | None = None
) -> tuple[Path, list[tuple[str, str]]]:
    """Write all outputs of a finished analysis; returns the run dir and (path relative to out_dir, type)."""
    stamp = timestamp or datetime.now().strftime(TIMESTAMP_FORMAT)
    name, rel_dir = run_names(state["stem"], stamp)
    run_dir = Path(out_dir) / rel_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    work = Path(state["work_dir"])
    frame = pd.read_parquet(work / "flux.parquet")
    files: list[tuple[str, str]] = []

    for gas in state["gases"]:
        grid = dict(np.load(work / f"kriging_{gas}.npz"))
        page = gas_report_html(state, gas, frame, grid)
        target = f"{name}_{gas}_report.html"
        (run_dir / target).write_text(page, encoding="utf-8")
        files.append((f"{rel_dir}/{target}", "report"))

    target = f"{name}_data.csv"
    write_csv(frame, run_dir / target)
    files.append((f"{rel_dir}/{target}", "data"))

    target = f"{name}_config.yaml"
    header = [f"GasFlux merged config ({PRODUCER}) for {state['source_name']}, run {stamp}"]
    header += [f"warning: {w}" for w in state.get("warnings", [])]
    (run_dir / target).write_text(config_to_yaml(state["config"], header), encoding="utf-8")
    files.append((f"{rel_dir}/{target}", "config"))

    target = f"{name}_output_vars.json"
    text = json.dumps(_jsonable(output_vars(state, stamp)), indent=2, ensure_ascii=False, allow_nan=False)
    (run_dir / target).write_text(text, encoding="utf-8")
    files.append((f"{rel_dir}/{target}", "metadata"))
    return run_dir, files


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Every sample with its derived columns, floats to 10 significant digits (latitude to ~1 cm).

    Written with pyarrow: pandas' formatter took 70 s for 370k rows, pyarrow takes ~10 s.
    """
    out = frame.copy()
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S.%f")
    for col in out.columns[out.dtypes == np.float64]:
        out[col] = round_significant(out[col].to_numpy(), 10)
    pacsv.write_csv(pa.Table.from_pandas(out, preserve_index=False), path)


def round_significant(values: np.ndarray, digits: int) -> np.ndarray:
    """Vectorised rounding to `digits` significant digits (NaN and 0 pass through)."""
    finite = np.isfinite(values) & (values != 0)
    magnitude = np.zeros_like(values)
    magnitude[finite] = np.floor(np.log10(np.abs(values[finite])))
    with np.errstate(over="ignore", invalid="ignore"):
        scale = 10.0 ** (digits - 1 - magnitude)
        rounded = np.round(values * scale) / scale
    return np.where(finite & np.isfinite(rounded), rounded, values)


def output_vars(state: Mapping[str, Any], stamp: str) -> dict[str, Any]:
    """Machine-readable results: rates and uncertainties per gas, units, grid, geometry, wind, row counts."""
    rates = {}
    for gas, res in state["results"].items():
        rates[gas] = {
            "emission_rate_kg_h": res["emission_rate_kg_h"],
            "uncertainty_kg_h": res["uncertainty_kg_h"],
            "uncertainty_kriging_kg_h": res["uncertainty_kriging_kg_h"],
            "uncertainty_jackknife_kg_h": res["uncertainty_jackknife_kg_h"],
            "uncertainty_method": res["uncertainty_method"],
            "emission_rate_positive_kg_h": res["emission_rate_positive_kg_h"],
            "emission_rate_negative_kg_h": res["emission_rate_negative_kg_h"],
            "transect_integration_kg_h": state["transect_flux"]["total_kg_h"].get(gas),
            "block_kriging_estimate_kg_h": res["block_kriging_estimate_kg_h"],
            "jackknife_estimates_kg_h": res["jackknife_estimates_kg_h"],
            "molar_mass_g_mol": state["density"][gas]["molar_mass_g_mol"],
        }
    return {
        "producer": PRODUCER,
        "source_file": state["source_name"],
        "run": stamp,
        "units": UNITS,
        "emission_rates": rates,
        "krig_parameters": {gas: res["variogram"] for gas, res in state["results"].items()},
        "grid": state["grid"],
        "observations": state["observations"],
        "plane_angle_deg": state["geometry"]["plane_angle_deg"],
        "geometry": state["geometry"],
        "wind": state["wind"],
        "density_basis": state["config"]["curtain_settings"]["density"],
        "background": state["background"],
        "transects": state["transects"],
        "transect_flux_kg_h_m": state["transect_flux"],
        "row_counts": state["row_counts"],
        "warnings": state.get("warnings", []),
        "timings_s": state.get("timings_s", {}),
    }


def _jsonable(value: Any) -> Any:
    """Plain JSON types; NaN/inf become null so the file is strict JSON."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


def _stride(n: int, limit: int = MAX_PLOT_POINTS) -> int:
    return max(1, math.ceil(n / limit))


def _f32(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(
        title=title, height=FIGURE_HEIGHT, margin={"l": 60, "r": 20, "t": 50, "b": 50},
        xaxis_title=x, yaxis_title=y, template="plotly_white",
    )  # fmt: skip
    return fig


def track_figure(frame: pd.DataFrame, gas: str, limit: int = MAX_PLOT_POINTS) -> go.Figure:
    step = _stride(len(frame), limit)
    sub = frame.iloc[::step]
    e0, n0 = float(frame["utm_easting"].min()), float(frame["utm_northing"].min())
    on = sub["on_curtain"].to_numpy(bool)
    fig = go.Figure()
    fig.add_trace(go.Scattergl(
        x=_f32(sub["utm_easting"][on] - e0), y=_f32(sub["utm_northing"][on] - n0), mode="markers",
        marker={"size": 4, "color": _f32(sub[f"{gas}_normalised"][on]), "colorscale": "Viridis",
                "colorbar": {"title": "ppm"}}, name="curtain samples",
    ))  # fmt: skip
    if (~on).any():
        fig.add_trace(go.Scattergl(
            x=_f32(sub["utm_easting"][~on] - e0), y=_f32(sub["utm_northing"][~on] - n0), mode="markers",
            marker={"size": 3, "color": "lightgrey"}, name="off curtain",
        ))  # fmt: skip
    return _layout(fig, f"Flight track coloured by {gas.upper()} enhancement", "easting (m)", "northing (m)")


def curtain_figure(grid: Mapping[str, np.ndarray], gas: str, limit: int = MAX_PLOT_POINTS) -> go.Figure:
    cols = _stride(grid["field"].size, MAX_HEATMAP_NODES * limit // MAX_PLOT_POINTS)
    obs = _stride(grid["obs_x"].size, limit)
    fig = go.Figure(go.Heatmap(
        x=_f32(grid["x"][::cols]), y=_f32(grid["z"]), z=_f32(grid["field"][:, ::cols]), colorscale="RdBu_r",
        zmid=0, colorbar={"title": "kg m⁻² h⁻¹"}, name="kriged",
    ))  # fmt: skip
    fig.add_trace(go.Scattergl(
        x=_f32(grid["obs_x"][::obs]), y=_f32(grid["obs_z"][::obs]), mode="markers",
        marker={"size": 3, "color": "black", "opacity": 0.5}, name="observation bins",
    ))  # fmt: skip
    return _layout(
        fig, f"Kriged {gas.upper()} flux density on the curtain", "along curtain (m)", "height (m)"
    )


def background_figure(frame: pd.DataFrame, gas: str, limit: int = MAX_PLOT_POINTS) -> go.Figure:
    step = _stride(len(frame), limit)
    sub = frame.iloc[::step]
    seconds = (sub["timestamp"] - frame["timestamp"].iloc[0]).dt.total_seconds()
    signal = sub[f"{gas}_signal"].to_numpy(bool)
    fig = go.Figure()
    fig.add_trace(go.Scattergl(x=_f32(seconds), y=_f32(sub[gas]), mode="lines", name=gas.upper(),
                               line={"color": "#7f7f7f", "width": 1}))  # fmt: skip
    fig.add_trace(go.Scattergl(x=_f32(seconds[signal]), y=_f32(sub[gas][signal]), mode="markers",
                               marker={"size": 3, "color": "#d62728"}, name="plume (masked)"))  # fmt: skip
    fig.add_trace(go.Scattergl(x=_f32(seconds), y=_f32(sub[f"{gas}_fit"]), mode="lines", name="baseline",
                               line={"color": "#1f77b4", "width": 2}))  # fmt: skip
    return _layout(fig, f"{gas.upper()} background fit", "time since start (s)", "ppm")


def transect_figure(state: Mapping[str, Any], gas: str) -> go.Figure:
    tf = state["transect_flux"]
    fig = go.Figure(go.Bar(
        x=_f32(tf[gas]) if tf[gas] else [], y=_f32(tf["height_m"]) if tf[gas] else [], orientation="h",
        text=[f"#{t['transect']}" for t in state["transects"]], name="line integral",
    ))  # fmt: skip
    return _layout(fig, f"{gas.upper()} flux per transect", "kg h⁻¹ m⁻¹", "height (m)")


def variogram_figure(result: Mapping[str, Any], gas: str) -> go.Figure:
    vg = result["variogram"]
    fig = go.Figure(go.Scatter(x=_f32(vg["lags_m"]), y=_f32(vg["semivariance"]), mode="markers",
                               name="experimental"))  # fmt: skip
    lags = np.linspace(0.0, max(vg["lags_m"] or [1.0]), 100)
    fig.add_trace(go.Scatter(x=_f32(lags), y=_f32(model_curve(vg, lags)), mode="lines", name="model"))
    return _layout(fig, f"{gas.upper()} semivariogram ({vg['model']})", "lag (m)", "(kg m⁻² h⁻¹)²")


def model_curve(vg: Mapping[str, Any], lags: np.ndarray) -> np.ndarray:
    """The fitted variogram model in physical units, for the plot."""
    from pykrige import variogram_models

    model = vg["model"]
    if model == "linear":
        params = [vg["slope"], vg["nugget"]]
    elif model == "power":
        params = [vg["scale"], vg["exponent"], vg["nugget"]]
    else:
        params = [vg["psill"], vg["range_m"], vg["nugget"]]
    return getattr(variogram_models, f"{model}_variogram_model")(params, lags)


def _fmt(value: Any, unit: str = "", digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g} {unit}".strip()
    return f"{value} {unit}".strip()


def summary_rows(state: Mapping[str, Any], gas: str) -> list[tuple[str, str]]:
    res = state["results"][gas]
    geo, wind, rows, bg = state["geometry"], state["wind"], state["row_counts"], state["background"][gas]
    grid = state["grid"]
    jack = res["uncertainty_jackknife_kg_h"]
    return [
        ("Emission rate", f"{res['emission_rate_kg_h']:.4g} ± {res['uncertainty_kg_h']:.2g} kg/h (1σ)"),
        ("Uncertainty components", f"block kriging {res['uncertainty_kriging_kg_h']:.2g} kg/h; "
                                   f"transect jackknife {_fmt(jack, 'kg/h', 2)}"),
        ("Positive / negative parts", f"{res['emission_rate_positive_kg_h']:.4g} / "
                                      f"{res['emission_rate_negative_kg_h']:.4g} kg/h"),
        ("Transect-integration check", _fmt(state["transect_flux"]["total_kg_h"].get(gas), "kg/h")),
        ("Variogram", f"{res['variogram']['model']}, range {_fmt(res['variogram'].get('range_m'), 'm', 3)}, "
                      f"nugget/sill {_fmt(_ratio(res['variogram']), '', 2)}"),
        ("Grid", f"{grid['n_x']} × {grid['n_z']} nodes, {grid['dx_m']:.2f} m × {grid['dz_m']:.2f} m, "
                 f"heights {grid['z_min_m']:.1f}–{grid['z_max_m']:.1f} m"),
        ("Curtain", f"azimuth {geo['plane_azimuth_deg']:.1f}°, normal {geo['normal_azimuth_deg']:.1f}°, "
                    f"length {geo['curtain_length_m']:.0f} m, {geo['n_transects']} transects"),
        ("Wind", f"{wind['windspeed_mean_m_s']:.2f} m/s from {wind['winddir_vector_mean_deg']:.0f}° "
                 f"(σ {wind['winddir_circstd_deg']:.0f}°), "
                 f"normal {wind['windspeed_normal_mean_m_s']:.2f} m/s, "
                 f"{wind['negative_normal_wind_fraction']:.1%} samples blowing back"),
        ("Background", f"mean {bg['baseline_mean_ppm']:.5g} ppm, "
                       f"noise σ {_fmt(bg['noise_sigma_ppm'], 'ppm', 2)}, "
                       f"plume samples {bg['signal_fraction']:.1%}, enhancement kept "
                       f"{_fmt(bg['enhancement_kept_fraction'], '', 3)}"),
        ("Rows", f"{rows['input']} read, {rows['dropped']} dropped, "
                 f"{rows.get('on_curtain', '–')} on curtain, {rows.get('in_transects', '–')} in transects"),
        ("Density basis", state["config"]["curtain_settings"]["density"]),
    ]  # fmt: skip


def _ratio(vg: Mapping[str, Any]) -> float | None:
    sill = vg.get("sill")
    return vg["nugget"] / sill if sill else None


def gas_report_html(
    state: Mapping[str, Any], gas: str, frame: pd.DataFrame, grid: Mapping[str, np.ndarray]
) -> str:
    """A self-contained page: summary table, track, curtain map, background, transects, variogram.

    Figure data is decimated until the page (with its inlined plotly.js) fits `MAX_REPORT_BYTES`.
    """
    limit = MAX_PLOT_POINTS
    while True:
        page = _page(state, gas, frame, grid, limit)
        if len(page.encode("utf-8")) <= MAX_REPORT_BYTES or limit <= 50:
            return page
        limit //= 2


def _page(
    state: Mapping[str, Any], gas: str, frame: pd.DataFrame, grid: Mapping[str, np.ndarray], limit: int
) -> str:
    figures = [
        track_figure(frame, gas, limit),
        curtain_figure(grid, gas, limit),
        background_figure(frame, gas, limit),
        transect_figure(state, gas),
        variogram_figure(state["results"][gas], gas),
    ]
    options = {"full_html": False, "include_plotlyjs": False, "config": {"displaylogo": False}}
    return _template().render(
        title=f"GasFlux mass balance — {gas.upper()} — {state['source_name']}",
        plotlyjs=get_plotlyjs(),
        rows=summary_rows(state, gas),
        warnings=state.get("warnings", []),
        figures=[fig.to_html(**options) for fig in figures],
        producer=PRODUCER,
    )


@cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return environment.get_template("report.html")
