"""Removing old GasFlux tasks: the document's periodic cleanup, as a scheduled Prefect deployment.

The deployment runs every GASFLUX_TASK_CLEANUP_INTERVAL seconds (read when the runner registers it) and
removes every finished task older than GASFLUX_MAX_TASK_AGE seconds (read at each run): its flow run,
its run files, its upload and its metadata rows. Pending and processing tasks are never touched.
Both this flow and DELETE /task/{id} remove a task with tasks/gasflux/cleanup.py's `remove_task`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from flowbridge.settings import get_settings
from storage.gasflux import repository
from tasks.gasflux.cleanup import PrefectRunRemover, remove_task


class CleanupParams(BaseModel):
    max_age_seconds: int | None = Field(
        None, ge=0, description="Remove finished tasks older than this (default GASFLUX_MAX_TASK_AGE)."
    )


@task(name="remove_old_tasks", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def remove_old_tasks(max_age_seconds: int) -> dict[str, Any]:
    cutoff = datetime.now(UTC) - timedelta(seconds=max_age_seconds)
    runs = PrefectRunRemover()
    removed, kept, freed = [], [], 0
    for row in repository.tasks_created_before(cutoff):
        state = runs.state(row.flow_run_id)
        if state is not None and not state.is_final:
            kept.append(row.job_id)
            continue
        freed += remove_task(runs, row.job_id, row.flow_run_id, row.upload_dir).total_size_deleted
        removed.append(row.job_id)
    get_run_logger().info(
        "removed %d GasFlux task(s) older than %ds (%d bytes); kept %d still active",
        len(removed), max_age_seconds, freed, len(kept),
    )  # fmt: skip
    return {"removed": removed, "kept_active": kept, "bytes_freed": freed}


@flow(name="gasflux-cleanup")
def gasflux_cleanup(max_age_seconds: int | None = None) -> dict[str, Any]:
    params = CleanupParams(max_age_seconds=max_age_seconds)
    age = (
        params.max_age_seconds if params.max_age_seconds is not None else get_settings().gasflux_max_task_age
    )
    return remove_old_tasks(age)
