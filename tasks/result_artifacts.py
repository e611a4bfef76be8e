"""What a finished job shows in the Prefect UI: its result as table, markdown and link artifacts.

Every job type publishes under fixed keys (`KEYS`), so the UI's Artifacts page keeps one history per key
across runs. The builders here are pure: they take a job's result data and return `ArtifactSpec`s, so
tests check the tables and markdown without a server. `publish` (and `publish_in_background`) gathers
and creates them inside the flow run and never fails the job: an error is logged as a warning and the
artifacts are skipped, since they are a view of the result and result.json stays the record.

Links point at the bridge's legacy download paths under `Settings.effective_public_url`, never at
storage, and no artifact holds a credential (user names and URL user info are left out).
"""

from __future__ import annotations

import base64
import contextvars
import io
import itertools
import json
import logging
import math
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import numpy as np
import pandas as pd

log = logging.getLogger("flowbridge.artifacts")

KEYS: dict[str, tuple[str, ...]] = {
    "traffic-forecast": (
        "traffic-forecast-backtest",
        "traffic-forecast-summary",
        "traffic-forecast-chart",
        "traffic-forecast-file",
        "traffic-forecast-bounds-file",
    ),
    "gasflux": (
        "gasflux-emission-rates",
        "gasflux-summary",
        "gasflux-report-<gas>",
        "gasflux-data-csv",
        "gasflux-output-json",
        "gasflux-config-yaml",
    ),
    "mrms-training": ("mrms-training-steps", "mrms-training-summary", "mrms-model"),
    "dataflow-run": ("dataflow-steps", "dataflow-lineage", "dataflow-summary"),
    "offline-task": ("offline-task-summary",),
}
CHART_HISTORY = pd.Timedelta(days=14)
CHART_SERIES = 4  # more series make the markdown (stored in Prefect's DB per run) large for little gain
CHART_POINTS = 600  # per line; longer lines are averaged down to this many points
_KEY = re.compile(r"^[a-z0-9-]+$")


@dataclass(frozen=True)
class ArtifactSpec:
    """One artifact to create: a table (list of rows), a markdown text or a link."""

    kind: Literal["table", "markdown", "link"]
    key: str
    description: str
    table: list[dict[str, Any]] | None = None
    markdown: str | None = None
    link: str | None = None
    link_text: str | None = None

    def __post_init__(self) -> None:
        if not _KEY.match(self.key):
            raise ValueError(f"artifact key {self.key!r} is not lowercase letters, numbers and dashes")


def key_part(text: str) -> str:
    """`text` as a piece of an artifact key (Prefect allows lowercase letters, numbers and dashes)."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", text.lower())).strip("-") or "x"


def without_credentials(location: str) -> str:
    """A URL without its user info (`scheme://user:pass@host` -> `scheme://host`); other text unchanged."""
    try:
        parts = urlsplit(location)
    except ValueError:
        return location
    if not parts.netloc or "@" not in parts.netloc:
        return location
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _join(base_url: str | None, path: str) -> str | None:
    return f"{base_url.rstrip('/')}/{path.lstrip('/')}" if base_url else None


# --- 000 traffic forecast -----------------------------------------------------------------------------
def traffic_artifacts(
    *,
    summary: Mapping[str, Any],
    config: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, Any]],
    history: pd.DataFrame | None,
    point: pd.DataFrame | None,
    bounds: pd.DataFrame | None,
    base_url: str | None,
    work_id: str | None,
    seconds: float | None = None,
) -> list[ArtifactSpec]:
    """Backtest table, summary, chart and links of one forecast.

    `summary` is the flow's input summary (rows, interval, filled share), `metrics` the per-series
    backtest scores of result.json; `history`/`point`/`bounds` are the upload on its grid, forecast.csv
    and forecast_bounds.csv (time column first); `work_id` is the legacy id the download links use.
    """
    filled = dict(summary.get("filled_share") or {})
    rows = [
        {
            "series": name,
            "method": m.get("method"),
            "mase": m.get("mase"),
            "wape": m.get("wape"),
            "mae": m.get("mae"),
            "backtest_points": m.get("backtest_points"),
            "filled_share": filled.get(name),
        }
        for name, m in metrics.items()
    ]
    specs = [
        ArtifactSpec(
            "table",
            "traffic-forecast-backtest",
            "Backtest over the last week per series: MASE and WAPE of the chosen method.",
            table=rows,
        )
    ]
    forecast_url = _join(base_url, f"static/download/{work_id}.csv") if work_id else None
    bounds_url = _join(base_url, f"static/download/{work_id}_bounds.csv") if work_id else None
    horizon = len(point) if point is not None else config.get("horizon")
    interval = summary.get("interval_seconds")
    level = config.get("interval_level")
    lines = [
        f"## Traffic forecast{f' `{work_id}`' if work_id else ''}",
        "",
        _md_table(
            ["", ""],
            [
                ["input", f"{summary.get('rows')} rows × {len(metrics)} series, every {interval} s"],
                ["history", f"{summary.get('start')} → {summary.get('end')}"],
                [
                    "horizon",
                    f"{horizon} steps"
                    + (
                        f" ({pd.Timedelta(seconds=int(interval) * int(horizon))})"
                        if interval and horizon
                        else ""
                    ),
                ],
                ["forecast", _window(point)],
                ["interval level", f"{level:.0%}" if isinstance(level, (int, float)) else "–"],
                ["holiday calendar", config.get("holiday_country") or "none"],
                ["filled share", ", ".join(f"{k}: {v:.1%}" for k, v in filled.items()) or "–"],
                ["time", f"{seconds:.1f} s" if seconds is not None else "–"],
            ],
        ),
        "",
        "### Backtest",
        "",
        _md_table(
            ["series", "method", "MASE", "WAPE"],
            [[r["series"], r["method"], _num(r["mase"]), _num(r["wape"])] for r in rows],
        ),
    ]
    if forecast_url:
        lines += ["", f"Files: [forecast]({forecast_url}) · [bounds]({bounds_url})"]
    specs.append(
        ArtifactSpec(
            "markdown",
            "traffic-forecast-summary",
            "Horizon, interval level, filled share and time of the forecast.",
            markdown="\n".join(lines),
        )
    )
    if history is not None and point is not None and bounds is not None:
        specs.append(
            ArtifactSpec(
                "markdown",
                "traffic-forecast-chart",
                "The last two weeks and the forecast with its prediction band.",
                markdown=chart_markdown(history, point, bounds, level if isinstance(level, float) else None),
            )
        )
    if forecast_url and bounds_url:
        specs += [
            ArtifactSpec(
                "link",
                "traffic-forecast-file",
                "The forecast CSV.",
                link=forecast_url,
                link_text=f"{work_id}.csv",
            ),
            ArtifactSpec(
                "link",
                "traffic-forecast-bounds-file",
                "Lower and upper bounds per series.",
                link=bounds_url,
                link_text=f"{work_id}_bounds.csv",
            ),
        ]
    return specs


def _window(point: pd.DataFrame | None) -> str:
    if point is None or point.empty:
        return "–"
    times = point.iloc[:, 0]
    return f"{times.iloc[0]} → {times.iloc[-1]}"


def chart_markdown(
    history: pd.DataFrame, point: pd.DataFrame, bounds: pd.DataFrame, level: float | None
) -> str:
    """One SVG chart per series (at most CHART_SERIES), embedded as data-URI images Prefect's UI shows."""
    columns = list(point.columns[1:])
    parts = []
    for column in columns[:CHART_SERIES]:
        svg = forecast_svg(history, point, bounds, column, level)
        data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
        parts.append(f"![{column}: last two weeks and forecast](data:image/svg+xml;base64,{data})")
    if len(columns) > CHART_SERIES:
        parts.append(f"*{len(columns) - CHART_SERIES} more series are in the forecast file.*")
    legend = "grey: observed · blue: forecast · shaded: " + (
        f"{level:.0%} prediction interval" if level else "prediction interval"
    )
    return "\n\n".join([f"### Last two weeks and the forecast\n\n{legend}", *parts])


def _thin(times: np.ndarray, values: np.ndarray, limit: int = CHART_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Bucket means down to at most `limit` points (times take each bucket's first); NaN stays a gap."""
    n = len(values)
    if n <= limit:
        return times, values
    edges = np.linspace(0, n, limit + 1).astype(int)
    with warnings.catch_warnings():  # an all-NaN bucket is a gap in the line, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.array([np.nanmean(values[a:b]) for a, b in itertools.pairwise(edges)])
    return times[edges[:-1]], means


def forecast_svg(
    history: pd.DataFrame, point: pd.DataFrame, bounds: pd.DataFrame, column: str, level: float | None
) -> str:
    """A small self-contained SVG line chart: observed (last two weeks), forecast, and its band."""
    width, height, left, right, top, bottom = 760, 240, 56, 12, 28, 30
    h_time = pd.to_datetime(history.iloc[:, 0])
    f_time = pd.to_datetime(point.iloc[:, 0])
    recent = h_time >= f_time.iloc[0] - CHART_HISTORY if len(f_time) else np.ones(len(h_time), bool)
    ht, hv = _thin(h_time[recent].to_numpy(), history.loc[recent, column].to_numpy(float))
    ft, fv = _thin(f_time.to_numpy(), point[column].to_numpy(float))
    _, lo = _thin(f_time.to_numpy(), bounds[f"{column}_lower"].to_numpy(float))
    _, hi = _thin(f_time.to_numpy(), bounds[f"{column}_upper"].to_numpy(float))
    all_values = np.concatenate([hv, fv, lo, hi])
    all_values = all_values[np.isfinite(all_values)]
    y0, y1 = (float(all_values.min()), float(all_values.max())) if len(all_values) else (0.0, 1.0)
    if y1 <= y0:
        y1 = y0 + 1.0
    t0 = (ht[0] if len(ht) else ft[0]).astype("datetime64[s]").astype(np.int64)
    t1 = ft[-1].astype("datetime64[s]").astype(np.int64) if len(ft) else t0 + 1
    t1 = max(int(t1), int(t0) + 1)

    def x(t: np.ndarray) -> np.ndarray:
        seconds = t.astype("datetime64[s]").astype(np.int64)
        return left + (seconds - t0) / (t1 - t0) * (width - left - right)

    def y(v: np.ndarray) -> np.ndarray:
        return top + (1 - (v - y0) / (y1 - y0)) * (height - top - bottom)

    def path(xs: np.ndarray, ys: np.ndarray) -> str:
        out, pen = [], "M"
        for a, b in zip(xs, ys, strict=True):
            if not np.isfinite(b):
                pen = "M"
                continue
            out.append(f"{pen}{a:.1f},{b:.1f}")
            pen = "L"
        return " ".join(out)

    band_ok = np.isfinite(lo) & np.isfinite(hi)
    bx = x(ft[band_ok])
    band = " ".join(
        f"{a:.1f},{b:.1f}"
        for a, b in [*zip(bx, y(hi[band_ok]), strict=True), *zip(bx[::-1], y(lo[band_ok])[::-1], strict=True)]
    )
    split = float(x(ft[:1])[0]) if len(ft) else width - right
    label = escape(str(column))
    fmt = "%Y-%m-%d %H:%M"
    start_text = pd.Timestamp(ht[0] if len(ht) else ft[0]).strftime(fmt)
    # the forecast's start is labelled only where it does not run into the start and end labels
    roomy = left + 110 < split < width - right - 110
    split_text = pd.Timestamp(ft[0]).strftime(fmt) if len(ft) and roomy else ""
    end_text = pd.Timestamp(ft[-1]).strftime(fmt) if len(ft) else ""
    band_name = f"{level:.0%} interval" if level else "interval"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">'
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>'
        f'<text x="{left}" y="16" font-size="13" font-weight="bold">{label}</text>'
        f'<text x="{width - right}" y="16" text-anchor="end" fill="#555">'
        f"observed · forecast · {band_name}</text>"
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" '
        'stroke="#999"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#999"/>'
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{y1:.4g}</text>'
        f'<text x="{left - 4}" y="{height - bottom}" text-anchor="end">{y0:.4g}</text>'
        f'<text x="{left}" y="{height - 10}">{start_text}</text>'
        f'<text x="{split:.1f}" y="{height - 10}" text-anchor="middle">{split_text}</text>'
        f'<text x="{width - right}" y="{height - 10}" text-anchor="end">{end_text}</text>'
        f'<polygon points="{band}" fill="#1f77b4" fill-opacity="0.2" stroke="none"/>'
        f'<line x1="{split:.1f}" y1="{top}" x2="{split:.1f}" y2="{height - bottom}" stroke="#bbb" '
        f'stroke-dasharray="4 3"/>'
        f'<path d="{path(x(ht), y(hv))}" fill="none" stroke="#777" stroke-width="1.2"/>'
        f'<path d="{path(x(ft), y(fv))}" fill="none" stroke="#1f77b4" stroke-width="1.8"/>'
        "</svg>"
    )


# --- 002 GasFlux ----------------------------------------------------------------------------------------
def gasflux_artifacts(
    *, summary: Mapping[str, Any], output_vars: Mapping[str, Any] | None, base_url: str | None
) -> list[ArtifactSpec]:
    """Emission rates per gas, the wind and curtain summary, and links to every output file.

    `summary` is the run's result.json, `output_vars` its `<stem>.processed_output_vars.json` (wind,
    geometry, per-gas uncertainty parts); links use the GasFlux task id (`summary["job_id"]`).
    """
    rates = (output_vars or {}).get("emission_rates") or {}
    transect = ((output_vars or {}).get("transect_flux_kg_h_m") or {}).get("total_kg_h") or {}
    rows = []
    for gas in summary.get("gases") or list(summary.get("emission_rates_kg_h") or {}):
        detail = rates.get(gas) or {}
        rows.append(
            {
                "gas": gas,
                "emission_rate_kg_h": (summary.get("emission_rates_kg_h") or {}).get(gas),
                "uncertainty_kg_h": (summary.get("uncertainty_kg_h") or {}).get(gas),
                "uncertainty_kriging_kg_h": detail.get("uncertainty_kriging_kg_h"),
                "uncertainty_jackknife_kg_h": detail.get("uncertainty_jackknife_kg_h"),
                "transect_integration_kg_h": transect.get(gas, detail.get("transect_integration_kg_h")),
            }
        )
    specs = [
        ArtifactSpec(
            "table",
            "gasflux-emission-rates",
            "Emission rate per gas with its 1σ uncertainty (kg/h).",
            table=rows,
        )
    ]
    job_id = summary.get("job_id")
    links: list[tuple[str, str, str, str]] = []  # (key, description, name, url)
    for item in summary.get("files") or []:
        rel, name = str(item["rel"]), str(item["name"])
        url = _join(base_url, "download/" + quote(f"{job_id}/{rel}")) if job_id else None
        if url is None:
            continue
        if name.endswith("_report.html"):
            gas = name.removesuffix("_report.html").rsplit("_", 1)[-1]
            links.append((f"gasflux-report-{key_part(gas)}", f"HTML report of {gas}.", name, url))
        elif name.endswith("_data.csv"):
            links.append(("gasflux-data-csv", "Every sample with its derived columns.", name, url))
        elif name.endswith("_output_vars.json"):
            links.append(("gasflux-output-json", "Machine-readable results.", name, url))
        elif name.endswith("_config.yaml"):
            links.append(("gasflux-config-yaml", "The merged config of the run.", name, url))
    wind = (output_vars or {}).get("wind") or {}
    geometry = (output_vars or {}).get("geometry") or {}
    observations = (output_vars or {}).get("observations") or {}
    lines = [
        f"## GasFlux `{job_id}`: {summary.get('source_name')}",
        "",
        _md_table(
            ["gas", "emission rate (kg/h)", "± 1σ (kg/h)"],
            [[r["gas"], _num(r["emission_rate_kg_h"]), _num(r["uncertainty_kg_h"])] for r in rows],
        ),
        "",
        "### Wind",
        "",
        _md_table(
            ["", ""],
            [
                [
                    "mean speed",
                    f"{_num(wind.get('windspeed_mean_m_s'))} m/s ± {_num(wind.get('windspeed_std_m_s'))}",
                ],
                [
                    "mean direction (from)",
                    f"{_num(wind.get('winddir_vector_mean_deg'))}° "
                    f"(circular std {_num(wind.get('winddir_circstd_deg'))}°)",
                ],
                [
                    "normal component",
                    f"{_num(wind.get('windspeed_normal_mean_m_s'))} m/s ± "
                    f"{_num(wind.get('windspeed_normal_std_m_s'))}",
                ],
                ["negative normal wind", _pct(wind.get("negative_normal_wind_fraction"))],
            ],
        ),
        "",
        "### Curtain",
        "",
        _md_table(
            ["", ""],
            [
                ["plane azimuth", f"{_num(geometry.get('plane_azimuth_deg'))}°"],
                ["length", f"{_num(geometry.get('curtain_length_m'))} m"],
                ["heights", f"{_num(geometry.get('height_min_m'))} – {_num(geometry.get('height_max_m'))} m"],
                ["transects", _num(geometry.get("n_transects"))],
                [
                    "points on curtain",
                    f"{_num(geometry.get('on_curtain_points'))} "
                    f"(off: {_num(geometry.get('off_curtain_points'))})",
                ],
                [
                    "kriging bins",
                    f"{_num(observations.get('bins'))} of {_num(observations.get('bin_width_m'))} m",
                ],
            ],
        ),
    ]
    warnings = summary.get("warnings") or []
    if warnings:
        lines += ["", "### Warnings", "", *[f"- {w}" for w in warnings]]
    if links:
        lines += ["", "### Files", "", *[f"- [{name}]({url})" for _, _, name, url in links]]
    processing = summary.get("processing_time_seconds")
    if processing is not None:
        lines += ["", f"Processing time: {processing:.1f} s"]
    specs.append(
        ArtifactSpec(
            "markdown", "gasflux-summary", "Emission rates, wind and curtain.", markdown="\n".join(lines)
        )
    )
    specs += [ArtifactSpec("link", key, text, link=url, link_text=name) for key, text, name, url in links]
    return specs


def _pct(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) and math.isfinite(value) else "–"


# --- 003 MRMS training ----------------------------------------------------------------------------------
STEP_COLUMNS = ("step", "loss", "accuracy", "val_loss", "val_accuracy")


def mrms_artifacts(
    *,
    learn_hist_no: str,
    summary: Mapping[str, Any],
    steps: Sequence[Mapping[str, Any]],
    early_stop: str | None,
    algorithm: str | None,
    base_url: str | None,
) -> list[ArtifactSpec]:
    """Per-step metrics, the early-stopping decision with the best step, and the model's download link.

    `steps` are the recorded step results (what get_learn_result returns), `summary` the result.json.
    The best step is the one with the lowest validation loss.
    """
    rows = [{c: s.get(c) for c in STEP_COLUMNS} for s in steps]
    specs = [ArtifactSpec("table", "mrms-training-steps", "Loss and accuracy per training step.", table=rows)]
    scored = [r for r in rows if isinstance(r.get("val_loss"), (int, float)) and math.isfinite(r["val_loss"])]
    best = min(scored, key=lambda r: r["val_loss"]) if scored else None
    ran = summary.get("steps", len(rows))
    decision = (
        f"stopped early after step {ran} ({early_stop or 'early-stopping rule met'})"
        if summary.get("stopped_early")
        else f"ran all {ran} steps" + (f" (early-stopping rule {early_stop} not met)" if early_stop else "")
    )
    url = _join(base_url, f"mrms/model_download?learn_hist_no={quote(learn_hist_no)}")
    final = summary.get("final") or (rows[-1] if rows else {})
    lines = [
        f"## MRMS training `{learn_hist_no}`",
        "",
        _md_table(
            ["", ""],
            [
                ["algorithm", algorithm or "–"],
                ["early stopping", decision],
                [
                    "best step",
                    f"{best['step']} (val_loss {_num(best['val_loss'])}, "
                    f"val_accuracy {_num(best.get('val_accuracy'))})"
                    if best
                    else "–",
                ],
                [
                    "final step",
                    f"{final.get('step')} (loss {_num(final.get('loss'))}, "
                    f"val_loss {_num(final.get('val_loss'))}, "
                    f"val_accuracy {_num(final.get('val_accuracy'))})",
                ],
                [
                    "model",
                    f"[{learn_hist_no}.skops]({url}) (skops, sha256 `{summary.get('sha256')}`)"
                    if url
                    else "–",
                ],
            ],
        ),
    ]
    specs.append(
        ArtifactSpec(
            "markdown",
            "mrms-training-summary",
            "Early-stopping decision, best step and final metrics.",
            markdown="\n".join(lines),
        )
    )
    if url:
        specs.append(
            ArtifactSpec(
                "link",
                "mrms-model",
                "The trained model (skops).",
                link=url,
                link_text=f"{learn_hist_no}.skops",
            )
        )
    return specs


# --- 004 DataFlow ---------------------------------------------------------------------------------------
def dataflow_artifacts(
    *, dataflow_id: int, name: str | None, execution_id: str | None, run_id: str, stats: Mapping[str, Any]
) -> list[ArtifactSpec]:
    """Rows per step, the lineage edges this run wrote, and where the target is.

    `stats` is what the run returns: rows_read, rows_written, reads, writes and `steps` (step, kind,
    rows_in, rows_out). The edges are the ones the run records in the graph store (storage/graph.py):
    (run)-[:OF]->(dataflow), (dataflow)-[:READS]->(dataset), (dataflow)-[:WRITES]->(dataset).
    """
    steps = [dict(s) for s in stats.get("steps") or []]
    reads = [without_credentials(str(d)) for d in stats.get("reads") or []]
    writes = [without_credentials(str(d)) for d in stats.get("writes") or []]
    node = f"dataflow:{dataflow_id}"
    edges = [{"from": f"run:{run_id}", "edge": "OF", "to": node}]
    edges += [{"from": node, "edge": "READS", "to": d} for d in reads]
    edges += [{"from": node, "edge": "WRITES", "to": d} for d in writes]
    title = f"dataflow {dataflow_id}" + (f" ({name})" if name else "")
    lines = [
        f"## {title}" + (f", execution `{execution_id}`" if execution_id else ""),
        "",
        f"Rows read: **{_num(stats.get('rows_read'))}**, rows written: **{_num(stats.get('rows_written'))}**",
        "",
        f"Target: {', '.join(f'`{w}`' for w in writes) or '–'}",
    ]
    if steps:
        lines += [
            "",
            "### Steps",
            "",
            _md_table(
                ["step", "kind", "rows in", "rows out"],
                [
                    [s.get("step"), s.get("kind"), _num(s.get("rows_in")), _num(s.get("rows_out"))]
                    for s in steps
                ],
            ),
        ]
    if edges:
        lines += [
            "",
            "### Lineage written",
            "",
            *[f"- `{e['from']}` **{e['edge']}** `{e['to']}`" for e in edges],
        ]
    return [
        ArtifactSpec("table", "dataflow-steps", f"Rows read and written per step of {title}.", table=steps),
        ArtifactSpec(
            "table", "dataflow-lineage", "Lineage edges this run wrote to the graph store.", table=edges
        ),
        ArtifactSpec(
            "markdown", "dataflow-summary", f"Rows, target and lineage of {title}.", markdown="\n".join(lines)
        ),
    ]


# --- 001 offline ----------------------------------------------------------------------------------------
def location(info: Mapping[str, Any], path_key: str) -> str:
    """`HDFS://host:port/path` or `CEPH://host:port/bucket#path`: where, never who (no user, no key)."""
    kind = str(info.get("fileSystemType") or "?")
    path = str(info.get(path_key) or "")
    return f"{kind}://{info.get('host')}:{info.get('port')}/{path.lstrip('/')}"


def offline_artifacts(
    *,
    summary: Mapping[str, Any],
    input_info: Mapping[str, Any],
    output_info: Mapping[str, Any],
    inner_summary: Mapping[str, Any] | None,
) -> list[ArtifactSpec]:
    """Input and output locations, the files written and the inner job's own summary (its result.json)."""
    output_files = list(summary.get("output_files") or [])
    lines = [
        f"## Offline task {summary.get('taskId')}: {summary.get('algorithm')}",
        "",
        _md_table(
            ["", ""],
            [
                [
                    "input",
                    f"`{location(input_info, 'inputPath')}` "
                    f"({len(summary.get('input_files') or [])} file(s), "
                    f"{summary.get('input_bytes', 0)} bytes)",
                ],
                [
                    "output",
                    f"`{output_info.get('fileSystemType')}://{output_info.get('host')}:"
                    f"{output_info.get('port')}/{str(summary.get('output_folder') or '').lstrip('/')}`",
                ],
                ["files written", len(output_files)],
                ["algorithm run", f"flow run `{summary.get('algorithm_run')}`"],
            ],
        ),
    ]
    if output_files:
        lines += ["", "### Output files", "", *[f"- `{f}`" for f in output_files[:50]]]
        if len(output_files) > 50:
            lines.append(f"- … {len(output_files) - 50} more")
    if inner_summary:
        text = json.dumps(_brief(inner_summary), indent=2, ensure_ascii=False, default=str)
        lines += ["", f"### {summary.get('algorithm')} summary", "", "```json", text, "```"]
    return [
        ArtifactSpec(
            "markdown",
            "offline-task-summary",
            "Input and output locations and the algorithm's summary.",
            markdown="\n".join(lines),
        )
    ]


def _brief(value: Any, depth: int = 0) -> Any:
    """The inner summary without long lists (a file list can hold thousands of entries)."""
    if isinstance(value, Mapping):
        return {k: _brief(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list) and len(value) > 10:
        return [*(_brief(v, depth + 1) for v in value[:10]), f"… {len(value) - 10} more"]
    return value


# --- gathering a finished run's data (storage, metadata DB, the run's tags) ---------------------------------
def _base_url() -> str:
    from flowbridge.settings import get_settings

    return get_settings().effective_public_url


def _tag_value(prefix: str) -> str | None:
    from prefect.runtime import flow_run

    return next((t[len(prefix) :] for t in flow_run.get_tags() or [] if t.startswith(prefix)), None)


def _elapsed() -> float | None:
    """Seconds since the flow run started (its start time, or its Running state's time)."""
    from datetime import UTC, datetime

    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    run = context.flow_run if context else None
    if run is None:
        return None
    started = run.start_time or (run.state.timestamp if run.state and run.state.is_running() else None)
    return (datetime.now(UTC) - started).total_seconds() if started else None


def traffic_from_run(run_id: str, result: Mapping[str, Any], series_file: str) -> list[ArtifactSpec]:
    """The forecast's artifacts from its result.json content and files (`result["files"]`: forecast,
    bounds); the legacy work_id comes from the run's `work_id:` tag (none when 001 runs it: no links)."""
    from storage.filesystems import get_storage
    from tasks.traffic.data import series_from_csv

    storage = get_storage()

    def read(rel: str) -> bytes:
        return storage.read_bytes(storage.run_path(run_id, rel))

    forecast_file, bounds_file = result["files"][:2]
    history = series_from_csv(read(series_file)).frame.reset_index()
    return traffic_artifacts(
        summary=result.get("input") or {},
        config=result.get("parameters") or {},
        metrics=result.get("metrics") or {},
        history=history,
        point=pd.read_csv(io.BytesIO(read(forecast_file))),
        bounds=pd.read_csv(io.BytesIO(read(bounds_file))),
        base_url=_base_url(),
        work_id=_tag_value("work_id:"),
        seconds=_elapsed(),
    )


def gasflux_from_run(run_id: str, summary: Mapping[str, Any]) -> list[ArtifactSpec]:
    """GasFlux artifacts from result.json content and the run's `_output_vars.json`."""
    from storage.filesystems import get_storage

    storage = get_storage()
    output_vars = None
    for item in summary.get("files") or []:
        if str(item["name"]).endswith("_output_vars.json"):
            output_vars = json.loads(storage.read_bytes(storage.run_path(run_id, str(item["rel"]))))
    base = _base_url() if summary.get("job_id") != run_id else None  # 001 runs have no GasFlux task id
    return gasflux_artifacts(summary=summary, output_vars=output_vars, base_url=base)


def mrms_from_run(learn_hist_no: str, summary: Mapping[str, Any]) -> list[ArtifactSpec]:
    """MRMS artifacts from the recorded steps (as get_learn_result serves them) and the project's rule."""
    from storage.mrms import repository as records

    hist = records.learn_hist(learn_hist_no)
    rule = records.project_for_training(hist["project_id"])["early_stop"]
    return mrms_artifacts(
        learn_hist_no=learn_hist_no,
        summary=summary,
        steps=records.step_results(learn_hist_no),
        early_stop=json.dumps(rule.as_json()) if rule.key is not None else None,
        algorithm=hist.get("alg_id"),
        base_url=_base_url(),
    )


def offline_from_run(
    summary: Mapping[str, Any], input_info: Mapping[str, Any], output_info: Mapping[str, Any]
) -> list[ArtifactSpec]:
    """The offline task's artifact; the inner job's result.json is read from its run folder."""
    from storage.filesystems import get_storage

    inner = get_storage().read_summary(str(summary.get("algorithm_run")))
    return offline_artifacts(
        summary=summary, input_info=input_info, output_info=output_info, inner_summary=inner
    )


# --- creating them --------------------------------------------------------------------------------------
def create(specs: Iterable[ArtifactSpec]) -> list[Any]:
    """Create the artifacts in the current flow run (Prefect attaches them to it)."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    ids = []
    for spec in specs:
        if spec.kind == "table":
            ids.append(create_table_artifact(spec.table or [], key=spec.key, description=spec.description))
        elif spec.kind == "markdown":
            ids.append(
                create_markdown_artifact(spec.markdown or "", key=spec.key, description=spec.description)
            )
        else:
            ids.append(
                create_link_artifact(
                    spec.link or "", link_text=spec.link_text, key=spec.key, description=spec.description
                )
            )
    return ids


def publish(build: Callable[[], Iterable[ArtifactSpec]], what: str) -> bool:
    """Build and create a job's result artifacts; any error is a warning, never the job's failure."""
    try:
        create(list(build()))
        return True
    except Exception as exc:
        _warn(f"result artifacts of {what} skipped: {type(exc).__name__}: {exc}")
        return False


def publish_in_background(build: Callable[[], Iterable[ArtifactSpec]], what: str) -> Callable[[], None]:
    """`publish` on a thread in this flow run's context; returns a bounded wait for it to finish.

    For short jobs (MRMS training, DataFlow) whose end would otherwise wait on a few API round trips.
    """
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(publish, build, what), name="artifacts", daemon=True)
    thread.start()
    return lambda: thread.join(30.0)


def _warn(message: str) -> None:
    try:
        from prefect import get_run_logger

        get_run_logger().warning(message)
    except Exception:
        log.warning(message)
