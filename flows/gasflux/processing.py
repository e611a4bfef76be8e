"""002 GasFlux as a Prefect flow: one retryable task per stage of the document's processing pipeline.

data_validation → background_correction → flux_calculation → spatial_interpolation → report_generation,
each a task around the stage function of `tasks.gasflux.pipeline`. The stages hand each other a small
JSON state and parquet/npz files in a local work folder of the flow-run process (task retries run in
the same process, so the folder is still there); only the upload, the config and the finished run
directory go through storage:

    runs/<flow run id>/<stem>.processed/<timestamp>_processing_run/<files>   (+ result.json)

The bridge serves them as /download/<job_id>/<stem>.processed/... . Input problems raise
`GasFluxInputError` (stage + error_code), which is never retried; every failure leaves result.json with
the document's `error_details` so GET /task can show them.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from storage.filesystems import get_storage
from tasks.gasflux import pipeline
from tasks.gasflux.config import GasFluxInputError
from tasks.gasflux.log_file import gasflux_file_logger
from tasks.progress import Progress

STAGES = list(pipeline.STAGES)
STAGE_MESSAGES: dict[str, str] = {
    "data_validation": "正在验证数据和合并配置...",
    "background_correction": "正在进行背景校正...",
    "flux_calculation": "正在计算气体通量...",
    "spatial_interpolation": "正在进行空间插值 (克里金插值)...",
    "report_generation": "GasFlux 分析完成,正在生成报告...",
}
DONE_MESSAGE = "处理完成成功"
UNEXPECTED_CODE = "PROCESSING_ERROR"


class GasfluxParams(BaseModel):
    """Parameters of one GasFlux run (storage-relative paths, so the offline platform can run it too)."""

    input_path: str = Field(description="Storage-relative path of the .xlsx/.xls (or .csv) flight table.")
    config_path: str | None = Field(None, description="Storage-relative path of an optional YAML config.")
    job_id: str | None = Field(None, description="The GasFlux task id, for log lines (default: run id).")


def _not_input_error(_task: Any, _run: Any, state: Any) -> bool:
    """Retry transient failures (storage, memory) but never a bad upload or config."""
    try:
        state.result()
    except GasFluxInputError:
        return False
    except Exception:
        return True
    return True


def _stage_task(name: str) -> Any:
    return task(
        name=name,
        cache_policy=NO_CACHE,
        retries=2,
        retry_delay_seconds=2,
        retry_condition_fn=_not_input_error,
    )


@_stage_task("data_validation")
def data_validation(input_path: str, config_path: str | None, work_dir: str) -> dict[str, Any]:
    """Copy the upload next to the work folder (remote storage) and validate it against the config."""
    storage = get_storage()
    source = storage.path(input_path)
    local = storage.local_path(source)
    if local is None:
        local = str(Path(work_dir) / Path(input_path).name)
        with storage.open(source, "rb") as src, open(local, "wb") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
    config_text = storage.read_bytes(storage.path(config_path)).decode("utf-8-sig") if config_path else None
    return pipeline.data_validation(local, config_text, Path(work_dir) / "stages")


@_stage_task("background_correction")
def background_correction(state: dict[str, Any]) -> dict[str, Any]:
    return pipeline.background_correction(state)


@_stage_task("flux_calculation")
def flux_calculation(state: dict[str, Any]) -> dict[str, Any]:
    return pipeline.flux_calculation(state)


@_stage_task("spatial_interpolation")
def spatial_interpolation(state: dict[str, Any]) -> dict[str, Any]:
    return pipeline.spatial_interpolation(state)


@_stage_task("report_generation")
def report_generation(state: dict[str, Any], run_id: str, work_dir: str) -> dict[str, Any]:
    """Write the run directory locally, then copy it into runs/<run id>/ in storage."""
    out_dir = Path(work_dir) / "out"
    shutil.rmtree(out_dir, ignore_errors=True)  # a retried attempt starts from a clean folder
    timestamp = datetime.now(UTC).strftime("%Y-%m-%d_%H-%M-%S-%f")
    out = pipeline.report_generation(state, out_dir, timestamp=timestamp)
    storage = get_storage()
    files = []
    for path in sorted(p for p in out_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(out_dir).as_posix()
        storage.write_result(run_id, rel, path.read_bytes())
        files.append({"rel": rel, "name": path.name, "size": path.stat().st_size})
    run_directory = Path(out["run_dir"]).resolve().relative_to(out_dir.resolve()).as_posix()
    return {"files": files, "run_directory": run_directory, "state": _summary_of(out)}


def _summary_of(state: dict[str, Any]) -> dict[str, Any]:
    """What GET /task and /reports show besides the files: emission rates, warnings, timings."""
    results = state.get("results") or {}
    return {
        "source_name": state.get("source_name"),
        "stem": state.get("stem"),
        "gases": state.get("gases"),
        "emission_rates_kg_h": {gas: r.get("emission_rate_kg_h") for gas, r in results.items()},
        "uncertainty_kg_h": {gas: r.get("uncertainty_kg_h") for gas, r in results.items()},
        "warnings": state.get("warnings", []),
        "timings_s": state.get("timings_s", {}),
    }


def _failure(exc: BaseException, stage: str) -> dict[str, Any]:
    if isinstance(exc, GasFluxInputError):
        details = exc.error_details()
        message = exc.message
    else:
        details = {"stage": stage, "error_code": UNEXPECTED_CODE}
        message = f"{type(exc).__name__}: {exc}"
    text = "".join(traceback.format_exception(exc))
    details["traceback"] = text if len(text) <= 4000 else f"{text[:300]}\n...\n{text[-3600:]}"
    return {"status": "failed", "error": message, "error_details": details}


@flow(name="gasflux", log_prints=True)
def gasflux(input_path: str, config_path: str | None = None, job_id: str | None = None) -> dict[str, Any]:
    params = GasfluxParams(input_path=input_path, config_path=config_path, job_id=job_id)
    run_id = str(flow_run.get_id())
    label = params.job_id or run_id
    storage = get_storage()
    logger = get_run_logger()
    file_log = gasflux_file_logger()
    size = storage.size(storage.path(params.input_path))
    started = time.monotonic()
    line = f"[task:{label}] Processing started: {Path(params.input_path).name} ({size / 1048576:.1f}MB)"
    logger.info(line)
    file_log.info(line)
    progress = Progress(STAGES, min_interval=0.0)
    work_dir = tempfile.mkdtemp(prefix=f"gasflux-{run_id}-")
    stage = STAGES[0]
    try:
        progress.stage(stage, STAGE_MESSAGES[stage])
        state = data_validation(params.input_path, params.config_path, work_dir)
        for stage, step in zip(
            STAGES[1:4], (background_correction, flux_calculation, spatial_interpolation), strict=True
        ):
            progress.stage(stage, STAGE_MESSAGES[stage])
            state = step(state)
        stage = STAGES[4]
        progress.stage(stage, STAGE_MESSAGES[stage])
        written = report_generation(state, run_id, work_dir)
    except BaseException as exc:
        failure = _failure(exc, stage)
        storage.write_summary(run_id, {"job_id": label, **failure})
        line = f"[task:{label}] Processing failed at {stage}: {failure['error']}"
        logger.error(line)
        file_log.error(line)
        raise
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    summary = {
        "job_id": label,
        "status": "completed",
        "run_directory": written["run_directory"],
        "files": written["files"],
        "processing_time_seconds": round(time.monotonic() - started, 3),
        **written["state"],
    }
    storage.write_summary(run_id, summary)
    line = f"[task:{label}] Processing completed: {len(written['files'])} files generated"
    logger.info(line)
    file_log.info(line)
    progress.finish(DONE_MESSAGE)
    return {k: summary[k] for k in ("job_id", "run_directory", "emission_rates_kg_h")}
