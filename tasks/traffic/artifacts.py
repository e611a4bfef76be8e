"""The traffic forecast's result artifacts: backtest table, summary, chart, file links."""

from __future__ import annotations

import base64
import io
import itertools
import warnings
from collections.abc import Mapping
from html import escape
from typing import Any

import numpy as np
import pandas as pd

from tasks.result_artifacts import (
    ArtifactSpec,
    base_url,
    elapsed_seconds,
    join_url,
    md_table,
    num,
    tag_value,
)

CHART_HISTORY = pd.Timedelta(days=14)
CHART_SERIES = 4  # more series make the markdown (stored in Prefect's DB per run) large for little gain
CHART_POINTS = 600  # per line; longer lines are averaged down to this many points


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
    forecast_url = join_url(base_url, f"static/download/{work_id}.csv") if work_id else None
    bounds_url = join_url(base_url, f"static/download/{work_id}_bounds.csv") if work_id else None
    horizon = len(point) if point is not None else config.get("horizon")
    interval = summary.get("interval_seconds")
    level = config.get("interval_level")
    lines = [
        f"## Traffic forecast{f' `{work_id}`' if work_id else ''}",
        "",
        md_table(
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
        md_table(
            ["series", "method", "MASE", "WAPE"],
            [[r["series"], r["method"], num(r["mase"]), num(r["wape"])] for r in rows],
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
        base_url=base_url(),
        work_id=tag_value("work_id:"),
        seconds=elapsed_seconds(),
    )
