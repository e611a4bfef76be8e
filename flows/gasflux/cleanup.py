"""Removing old GasFlux tasks: the document's periodic cleanup, as a scheduled Prefect deployment.

The deployment runs every GASFLUX_TASK_CLEANUP_INTERVAL seconds (read when the runner registers it) and
removes every finished task older than GASFLUX_MAX_TASK_AGE seconds (read at each run): its flow run,
its run files, its upload and its metadata rows. Pending and processing tasks are never touched.
`remove_task` is also what DELETE /task/{id} calls, so both remove exactly the same things.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field
from sqlalchemy import select

from api_bridge.jobs import JobGateway, JobNotFound, get_gateway
from flowbridge.settings import get_settings
from storage.filesystems import get_storage
from storage.gasflux.models import GasfluxTask
from storage.metadata import session_scope

API = "gasflux"


class CleanupParams(BaseModel):
    max_age_seconds: int | None = Field(
        None, ge=0, description="Remove finished tasks older than this (default GASFLUX_MAX_TASK_AGE)."
    )


@dataclass(frozen=True)
class Removed:
    folders_deleted: int
    total_size_deleted: int


def remove_task(gateway: JobGateway, job_id: str, flow_run_id: str, upload_dir: str) -> Removed:
    """Delete a task's flow run, run folder, upload folder and rows; OSError propagates to the caller."""
    storage = get_storage()
    folders = 0
    freed = 0
    run_dir = storage.run_dir(flow_run_id)
    if storage.exists(run_dir):
        folders += 1
    freed += gateway.delete(flow_run_id)
    upload = storage.path(upload_dir)
    if storage.exists(upload):
        folders += 1
        freed += storage.delete(upload)
    gateway.forget(API, job_id)
    with session_scope() as session:
        row = session.get(GasfluxTask, job_id)
        if row is not None:
            session.delete(row)
    return Removed(folders, freed)


@task(name="remove_old_tasks", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def remove_old_tasks(max_age_seconds: int) -> dict[str, Any]:
    cutoff = datetime.now(UTC) - timedelta(seconds=max_age_seconds)
    with session_scope() as session:
        old = [
            (r.job_id, r.flow_run_id, r.upload_dir)
            for r in session.scalars(select(GasfluxTask).where(GasfluxTask.created_at < cutoff))
        ]
    gateway = get_gateway()
    removed, kept, freed = [], [], 0
    for job_id, run_id, upload_dir in old:
        with contextlib.suppress(JobNotFound):
            if not gateway.status(run_id, fresh=True).state.is_final:
                kept.append(job_id)
                continue
        freed += remove_task(gateway, job_id, run_id, upload_dir).total_size_deleted
        removed.append(job_id)
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
