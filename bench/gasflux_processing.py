"""Processing time and peak memory of the GasFlux pipeline for 1k, 10k and 100k rows and a ~50 MB .xlsx.

Each case runs `run_all` in its own process, started by a small measuring process that reads the
worker's peak RSS with `resource.getrusage(RUSAGE_CHILDREN)`, so no case inherits another's memory.
Inputs are the same synthetic Gaussian-plume flight (tests/support/plume.py) sampled at different rates.
Writes bench/results/gasflux_processing.md.

    python bench/gasflux_processing.py            # all cases
    python bench/gasflux_processing.py --quick    # 1k and 10k only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "gasflux_processing.md"
FLIGHT_SECONDS = 1259.0
CASES = [
    ("1k", 1_000, "csv"),
    ("10k", 10_000, "csv"),
    ("100k", 100_000, "csv"),
    ("xlsx-50MB", 370_000, "xlsx"),
]


def make_input(rows: int, fmt: str, folder: Path) -> Path:
    """The benchmark flight with `rows` samples, as CSV or .xlsx (xlsxwriter when installed: 3x faster)."""
    sys.path.insert(0, str(ROOT))
    from tests.support.plume import PlumeFlight, simulate

    path = folder / f"flight_{rows}.{fmt}"
    if path.exists():
        return path
    frame = simulate(PlumeFlight(rate_hz=rows / FLIGHT_SECONDS, seed=7)).frame
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        try:
            import xlsxwriter  # noqa: F401

            engine = "xlsxwriter"
        except ImportError:
            engine = "openpyxl"
        frame.to_excel(path, index=False, engine=engine)
    return path


def worker(path: str, out_dir: str) -> None:
    """Run the whole pipeline once and print its result summary as JSON."""
    sys.path.insert(0, str(ROOT))
    from tasks.gasflux.pipeline import run_all

    started = time.perf_counter()
    state = run_all(path, None, out_dir)
    summary = {
        "wall_s": time.perf_counter() - started,
        "timings_s": state["timings_s"],
        "rows": state["row_counts"]["valid"],
        "obs_bins": state["observations"]["bins"],
        "rates": {g: r["emission_rate_kg_h"] for g, r in state["results"].items()},
    }
    print(json.dumps(summary))


def measure(path: str) -> None:
    """Start the worker, wait, report its output plus the children's peak RSS (MiB)."""
    with tempfile.TemporaryDirectory() as out_dir:
        done = subprocess.run(
            [sys.executable, __file__, "--worker", path, out_dir], capture_output=True, text=True, check=True
        )
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary["max_rss_mib"] = usage.ru_maxrss / 1024.0
    summary["cpu_s"] = usage.ru_utime + usage.ru_stime
    print(json.dumps(summary))


def machine() -> dict[str, str]:
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    engine = "calamine" if _has("python_calamine") else "openpyxl"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "xlsx reader": engine,
        "BLAS threads": os.environ.get("FLOWBRIDGE_GASFLUX_BLAS_THREADS", "1"),
    }


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=2, metavar=("DATA", "OUT"))
    parser.add_argument("--measure", metavar="DATA")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "gasflux_bench_data"))
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    if args.measure:
        measure(args.measure)
        return

    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    info = machine()
    rows_out = []
    for label, rows, fmt in CASES[:2] if args.quick else CASES:
        path = make_input(rows, fmt, data_dir)
        done = subprocess.run(
            [sys.executable, __file__, "--measure", str(path)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            raise SystemExit(f"case {label} failed")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result.update(label=label, size_mb=path.stat().st_size / 1e6, fmt=fmt)
        rows_out.append(result)
        print(json.dumps(result), flush=True)
    write_report(info, rows_out)


def write_report(info: dict[str, str], results: list[dict]) -> None:
    lines = [
        "# GasFlux processing benchmark",
        "",
        "`python bench/gasflux_processing.py`: `run_all` (read, validate, background, curtain, kriging",
        "with jackknife, three HTML reports, CSV, YAML, JSON) on one synthetic plume flight (12 transects,",
        "21 min) sampled at different rates; each case in a fresh process, peak RSS from",
        "`getrusage(RUSAGE_CHILDREN)`.",
        "",
        "Machine: " + "; ".join(f"{k}: {v}" for k, v in info.items()),
        "",
        "| case | rows | input | file MB | wall s | CPU s | peak RSS MiB | read+validate s | background s"
        " | curtain+flux s | kriging s | reports s | obs bins |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        t = r["timings_s"]
        lines.append(
            f"| {r['label']} | {r['rows']} | {r['fmt']} | {r['size_mb']:.1f} | {r['wall_s']:.1f} |"
            f" {r['cpu_s']:.1f} |"
            f" {r['max_rss_mib']:.0f} | {t['data_validation']:.1f} | {t['background_correction']:.1f} |"
            f" {t['flux_calculation']:.1f} | {t['spatial_interpolation']:.1f} |"
            f" {t['report_generation']:.1f} | {r['obs_bins']} |"
        )
    lines += [
        "",
        "Kriging cost does not grow with rows: samples are averaged into at most `max_obs` (2500) bins per",
        "transect and along-curtain bin, so the kriging matrices stay below ~2500². Row-proportional work is",
        "reading, the rolling baselines, and writing the processed CSV. The machine is shared, so wall times",
        "carry the load shown above; CPU s (user + system of the worker) is the load-independent cost.",
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
