"""000 traffic forecast as a Prefect flow: validate the upload, then backtest, fit and forecast.

Each task reads and writes files in storage (never passes DataFrames), so a retry or a worker on another
machine picks up exactly where the last one left off. Input problems raise `TrafficDataError`, which is
not retried: the run fails at once and the legacy progress call returns the reason.
"""

from __future__ import annotations

import io
import json
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from pydantic import BaseModel, Field, field_validator

from flowbridge.settings import get_settings
from storage.filesystems import get_storage
from tasks import result_artifacts as artifacts
from tasks.progress import Progress
from tasks.retries import retry_unless
from tasks.timeouts import run_step
from tasks.traffic.artifacts import traffic_from_run
from tasks.traffic.data import TrafficDataError, load_traffic_csv, series_from_csv, series_to_csv
from tasks.traffic.forecasting import ForecastConfig, forecast

STAGES = ["validate", "backtest_and_fit", "write_forecast"]
SERIES_FILE = "work/series.csv"
FORECAST_FILE = "forecast.csv"
BOUNDS_FILE = "forecast_bounds.csv"


class TrafficForecastParams(BaseModel):
    """What a client may set on get_flow (all optional but the input)."""

    input_path: str = Field(description="Storage-relative path of the uploaded CSV.")
    horizon: int | None = Field(None, ge=1, le=100_000, description="Steps to forecast (default: one day).")
    interval_level: float = Field(0.8, gt=0.0, lt=1.0, description="Prediction-interval coverage.")
    holiday_country: str | None = Field(
        default_factory=lambda: get_settings().holiday_country,
        description="ISO country of the holiday calendar.",
    )

    @field_validator("holiday_country")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        import holidays

        if value and value.upper() not in holidays.list_supported_countries():
            raise ValueError(f"unknown holiday country {value!r}")
        return value.upper() if value else None


# retry transient failures (storage, memory pressure) but never a bad upload
_not_input_error = retry_unless(TrafficDataError)


@task(
    name="validate_csv",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=_not_input_error,
)
def validate_csv(input_path: str, run_id: str) -> dict[str, Any]:
    """Parse the upload onto a regular grid and keep it beside the run for the next task."""
    storage = get_storage()
    with storage.open(storage.path(input_path), "rb") as handle:
        series = load_traffic_csv(handle, max_bytes=get_settings().max_upload_bytes)
    storage.write_result(run_id, SERIES_FILE, series_to_csv(series))
    summary = series.summary()
    logger = get_run_logger()
    logger.info(
        "validated %d rows x %d series at %ss; duplicates removed %d; missing share %s",
        summary["rows"],
        len(series.columns),
        summary["interval_seconds"],
        series.duplicates_removed,
        json.dumps(series.filled_share),
    )
    return summary


@task(
    name="forecast_series",
    cache_policy=NO_CACHE,
    retries=1,
    retry_delay_seconds=2,
    retry_condition_fn=_not_input_error,
)
def forecast_series(run_id: str, config: dict[str, Any], progress: Progress | None = None) -> dict[str, Any]:
    """Backtest, weigh the global model against the seasonal naives over several weeks, and forecast."""
    storage = get_storage()
    series = series_from_csv(storage.read_bytes(storage.run_path(run_id, SERIES_FILE)))

    def report(fraction: float, message: str) -> None:
        if progress is not None:
            progress.advance(fraction, message)

    result = forecast(series, ForecastConfig(**config), progress=report)
    for name, frame in ((FORECAST_FILE, result.point), (BOUNDS_FILE, result.bounds)):
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        storage.write_result(run_id, name, buffer.getvalue().encode("utf-8"))
    logger = get_run_logger()
    worked = result.info.get("worked_holidays")
    if isinstance(worked, list) and worked:
        logger.info(
            "holidays forecast as working days (the upload's history shows them worked): %s",
            ", ".join(map(str, worked)),
        )
    for column, metrics in result.metrics.items():
        logger.info("series %s: %s", column, json.dumps(metrics))
    return result.metrics


@flow(name="traffic-forecast", log_prints=True)
def traffic_forecast(
    input_path: str,
    horizon: int | None = None,
    interval_level: float = 0.8,
    holiday_country: str | None = "CN",
) -> dict[str, Any]:
    params = TrafficForecastParams(
        input_path=input_path, horizon=horizon, interval_level=interval_level, holiday_country=holiday_country
    )
    run_id = str(flow_run.get_id())
    progress = Progress(STAGES)
    progress.stage("validate", "reading the upload")
    summary = validate_csv(params.input_path, run_id)
    progress.stage("backtest_and_fit", "backtesting and fitting")
    config = {
        "horizon": params.horizon,
        "interval_level": params.interval_level,
        "holiday_country": params.holiday_country,
    }
    metrics = run_step(forecast_series, "forecast_timeout_seconds", run_id, config, progress)
    progress.stage("write_forecast", "writing the result")
    result = {
        "input": summary,
        "parameters": config,
        "metrics": metrics,
        "files": [FORECAST_FILE, BOUNDS_FILE],
    }
    get_storage().write_summary(run_id, result)
    shown = artifacts.publish_in_background(lambda: traffic_from_run(run_id, result, SERIES_FILE), "forecast")
    progress.finish("forecast ready")
    shown()
    return result
