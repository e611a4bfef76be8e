"""The GasFlux analysis as five stage functions a Prefect flow can call one task at a time.

Each stage reads what the previous one left in ``work_dir`` (parquet frames, npz grids) and returns a
JSON-serialisable state dict, so a flow can persist, retry or resume between stages. Stage names are the
document's: data_validation → background_correction → flux_calculation → spatial_interpolation →
report_generation. Expected failures raise `GasFluxInputError` with the stage and an error code.
"""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.gasflux import baseline as background
from tasks.gasflux import curtain, flux, kriging
from tasks.gasflux import measurements as gasflux_io
from tasks.gasflux.config import STAGES, GasFluxInputError, merge_config

__all__ = [
    "STAGES",
    "GasFluxInputError",
    "background_correction",
    "data_validation",
    "flux_calculation",
    "report_generation",
    "run_all",
    "spatial_interpolation",
]

BLAS_THREADS = int(os.environ.get("FLOWBRIDGE_GASFLUX_BLAS_THREADS", "1"))
VALIDATED = "validated.parquet"
BACKGROUND = "background.parquet"
FLUX = "flux.parquet"


@contextlib.contextmanager
def _blas_threads() -> Iterator[None]:
    """Cap BLAS/OpenMP pools (default 1 thread).

    Workers are 2-core machines shared with the Prefect server, the bridge and other flows; measured here,
    OpenBLAS with 2 threads on a busy 2-core box inverted a 1000×1000 kriging matrix 20× slower than with
    one (spin-waiting threads), while the matrices are small enough that one thread takes ~0.1 s.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a declared dependency
        yield
        return
    with threadpool_limits(limits=BLAS_THREADS):
        yield


def _next_state(state: dict[str, Any], stage: str, started: float) -> dict[str, Any]:
    out = copy.deepcopy(state)
    out["stage"] = stage
    out.setdefault("timings_s", {})[stage] = round(time.perf_counter() - started, 4)
    return out


def _work(state: dict[str, Any], name: str) -> Path:
    return Path(state["work_dir"]) / name


def data_validation(
    data_path: str | Path, config_yaml_text: str | None, work_dir: str | Path
) -> dict[str, Any]:
    """Merge the config, read and validate the table; persists ``validated.parquet``."""
    started = time.perf_counter()
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    config, config_warnings = merge_config(config_yaml_text)
    frame = gasflux_io.read_table(data_path)
    clean, counts, data_warnings = gasflux_io.validate_frame(frame, config)
    clean.to_parquet(work / VALIDATED, index=False)
    state = {
        "source_name": Path(data_path).name,
        "stem": Path(data_path).stem,
        "work_dir": str(work),
        "config": config,
        "gases": counts["gases"],
        "row_counts": counts,
        "warnings": [*config_warnings, *data_warnings],
    }
    return _next_state(state, "data_validation", started)


def background_correction(state: dict[str, Any]) -> dict[str, Any]:
    """Per-gas baseline and enhancement; persists ``background.parquet``."""
    started = time.perf_counter()
    frame = pd.read_parquet(_work(state, VALIDATED))
    corrected, stats = background.correct_background(
        frame, state["gases"], state["config"]["algorithmic_baseline_settings"]
    )
    corrected.to_parquet(_work(state, BACKGROUND), index=False)
    out = _next_state(state, "background_correction", started)
    out["background"] = stats
    return out


def flux_calculation(state: dict[str, Any]) -> dict[str, Any]:
    """Curtain geometry, transects, normal wind and point flux density; persists ``flux.parquet``."""
    started = time.perf_counter()
    frame = pd.read_parquet(_work(state, BACKGROUND))
    with _blas_threads():
        frame, geometry, runs = curtain.build_curtain(frame, state["config"]["curtain_settings"])
    frame, density = flux.add_flux_density(frame, state["gases"], state["config"])
    frame.to_parquet(_work(state, FLUX), index=False)
    out = _next_state(state, "flux_calculation", started)
    out["geometry"] = geometry
    out["transects"] = runs
    out["wind"] = flux.wind_statistics(frame)
    out["density"] = density
    out["transect_flux"] = flux.transect_fluxes(frame, state["gases"], runs)
    out["row_counts"]["on_curtain"] = geometry["on_curtain_points"]
    out["row_counts"]["in_transects"] = geometry["transect_points"]
    if geometry["n_transects"] < 2:
        out["warnings"].append(
            f"only {geometry['n_transects']} transect(s) detected; heights span all samples"
        )
    return out


def spatial_interpolation(state: dict[str, Any]) -> dict[str, Any]:
    """Krige each gas on the curtain and integrate; persists ``kriging_<gas>.npz``."""
    started = time.perf_counter()
    config = state["config"]
    frame = pd.read_parquet(_work(state, FLUX))
    on = frame.loc[frame["on_curtain"]]
    oks = config["ordinary_kriging_settings"]
    x_range, z_range = kriging.curtain_extent(on, oks)
    columns = [f"{gas}_kg_h_m2" for gas in state["gases"]]
    if not oks["include_non_transect"] and (on["transect"] >= 0).sum() >= kriging.MIN_OBS:
        on = on.loc[on["transect"] >= 0]
    obs, bin_width = kriging.bin_observations(on, columns, oks, x_range[1] - x_range[0])
    grid = kriging.make_grid(x_range, z_range, oks["grid_resolution"], oks["min_nodes"])
    results: dict[str, Any] = {}
    with _blas_threads():
        for gas, column in zip(state["gases"], columns, strict=True):
            result, arrays = kriging.krige_gas(
                obs, column, grid, config["semivariogram_settings"], oks["jackknife"]
            )
            np.savez_compressed(_work(state, f"kriging_{gas}.npz"), **arrays)
            results[gas] = result
    out = _next_state(state, "spatial_interpolation", started)
    out["grid"] = grid.summary()
    out["observations"] = {"bins": len(obs), "bin_width_m": bin_width, "samples": int(obs["n"].sum())}
    out["results"] = results
    return out


def report_generation(
    state: dict[str, Any], out_dir: str | Path | None = None, timestamp: str | None = None
) -> dict[str, Any]:
    """Write the run directory (HTML per gas, CSV, YAML, JSON); returns the files as (relative path, type)."""
    from tasks.gasflux import report as gasflux_report

    started = time.perf_counter()
    target = Path(out_dir) if out_dir is not None else Path(state["config"]["output_dir"]).expanduser()
    out = _next_state(state, "report_generation", started)
    run_dir, files = gasflux_report.write_run(out, target, timestamp=timestamp)
    out["timings_s"]["report_generation"] = round(time.perf_counter() - started, 4)
    out["run_dir"] = str(run_dir)
    out["files"] = [[rel, kind] for rel, kind in files]
    return out


def run_all(
    data_path: str | Path,
    config_yaml_text: str | None,
    out_dir: str | Path,
    work_dir: str | Path | None = None,
) -> dict[str, Any]:
    """All five stages in order (benchmarks, CLI use); the work folder is temporary unless given."""
    with contextlib.ExitStack() as stack:
        if work_dir is None:
            work_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="gasflux_"))
        state = data_validation(data_path, config_yaml_text, work_dir)
        state = background_correction(state)
        state = flux_calculation(state)
        state = spatial_interpolation(state)
        return report_generation(state, out_dir)
