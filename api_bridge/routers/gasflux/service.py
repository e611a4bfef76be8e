"""002 GasFlux operations behind the endpoints: what combines the task rows, the job gateway and storage.

The endpoints parse a request, call one function here and translate its answer into the document's
envelope; this module opens no DB session (storage/gasflux/repository.py does), joins no path
(storage/gasflux/files.py does) and answers no HTTP. Failures the endpoints answer differently are
exceptions (`TaskNotFound`, `TaskBusy`, `SubmitFailed`); what they answer with is built here, because
the document's task and report objects are the domain's view of a task, not a reply format.
The gateway is passed in by the endpoint (one per request, and a fake one in tests).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from api_bridge.cache import RefreshingCache
from api_bridge.gateway import JobGateway, JobNotFound, JobState, JobStatus
from api_bridge.requests import canonical_uuid, save_upload
from api_bridge.routers.gasflux.codes import (
    ACTIVE,
    API,
    JOB_ID_TAG,
    JOB_TYPE,
    RECENT_TASKS,
    STATE_OF_STATUS,
    STATUS_OF_STATE,
    SUPPORTED_ENV,
    ErrorCode,
    Msg,
    Priority,
    SortBy,
    SortOrder,
    TaskStatus,
    file_type,
)
from api_bridge.routers.gasflux.stats import TaskCensus
from api_bridge.run_names import run_name
from deployments.priority import PRIORITY_TAG  # the runner and workers start runs in its order
from flowbridge.settings import get_settings
from storage.filesystems import RESULT_SUMMARY, get_storage
from storage.gasflux import files, repository
from storage.gasflux.files import Lookup, RunFile
from storage.gasflux.models import GasfluxTask
from tasks.gasflux.cleanup import remove_task

log = logging.getLogger("flowbridge.gasflux")
MAX_CONFIG_BYTES = 1024 * 1024
STATUS_CHUNK = 200  # the Prefect API's default page size


class TaskNotFound(LookupError):
    """No such task (no row, or its flow run is gone); `task_id` is the id the reply names."""

    def __init__(self, task_id: str) -> None:
        super().__init__(task_id)
        self.task_id = task_id


class TaskBusy(Exception):
    """The task is still pending or processing, so it cannot be deleted."""

    def __init__(self, task_status: TaskStatus) -> None:
        super().__init__(str(task_status))
        self.task_status = task_status


class SubmitFailed(Exception):
    """Prefect refused the flow run; the upload was removed again."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.kind = type(cause).__name__


# --- task rows (cached) --------------------------------------------------------------------------------
def _epoch(value: datetime | None) -> float | None:
    return round(value.timestamp(), 3) if value else None


def _read_row(canonical: str) -> GasfluxTask:
    row = repository.get_task(canonical)
    if row is None:
        raise LookupError(canonical)
    return row


# Rows change only through PUT and DELETE (which drop them here); another bridge's change shows within
# the status cache period, like the run's state.
_ROWS: RefreshingCache[str, GasfluxTask] = RefreshingCache(
    _read_row,
    ttl=lambda: get_settings().status_cache_seconds,
    max_stale=lambda: 2 * get_settings().status_cache_seconds,
)


def find_task(task_id: str) -> GasfluxTask | None:
    """The task's row (a client's id in any UUID spelling), or None."""
    canonical = canonical_uuid(task_id)
    if canonical is None:
        return None
    try:
        return _ROWS.get(canonical, fresh=True)
    except LookupError:
        return None


def _known_row(task_id: str) -> GasfluxTask | None:
    """The task's row without touching the database (see api_bridge/cache.py), else None."""
    canonical = canonical_uuid(task_id)
    return _ROWS.peek(canonical) if canonical else None


# --- the document's task object ------------------------------------------------------------------------
def status_of(status: JobStatus) -> TaskStatus:
    return STATUS_OF_STATE[status.state]


def _results(
    job_id: str, summary: dict[str, Any] | None, fallback: Callable[[], list[Any]]
) -> list[dict[str, Any]]:
    if summary and summary.get("files"):
        found = [(f["rel"], int(f.get("size") or 0)) for f in summary["files"]]
    else:
        found = [(f.path, f.size) for f in fallback() if f.path != RESULT_SUMMARY]
    out = []
    for rel, size in found:
        rel_path = files.download_relpath(job_id, rel)
        name = PurePosixPath(rel).name
        out.append(
            {
                "name": name,
                "rel_path": rel_path,
                "download_url": "/download/" + quote(rel_path),
                "size": size,
                "type": str(file_type(name)),
            }
        )
    return out


def _task_message(row: GasfluxTask, status: JobStatus, task_status: TaskStatus) -> str:
    changed = (
        max(t for t in (status.created, status.started, status.ended) if t is not None)
        if (status.created or status.started or status.ended)
        else None
    )
    if row.message and row.message_at and (changed is None or row.message_at >= changed):
        return row.message
    if task_status is TaskStatus.PENDING:
        return Msg.QUEUED
    if task_status is TaskStatus.PROCESSING:
        return status.stage_message or Msg.PROCESSING
    if task_status is TaskStatus.COMPLETED:
        return Msg.DONE
    return Msg.CANCELLED if status.state is JobState.CANCELLED else Msg.FAILED


def _updated_at(row: GasfluxTask, status: JobStatus) -> float | None:
    times = [t for t in (status.created, status.started, status.ended, row.message_at) if t is not None]
    return _epoch(max(times)) if times else _epoch(row.created_at)


_SUMMARIES: dict[tuple[str, str, datetime | None], dict[str, Any] | None] = {}


def _summary(gateway: JobGateway, status: JobStatus) -> dict[str, Any] | None:
    """result.json of a finished run, read once per run and end time (a re-run ends later: read again).

    Clients poll finished tasks too; on S3 or HDFS a read per poll would dominate GET /task."""
    key = (str(status.run_id), str(status.state), status.ended)
    if key not in _SUMMARIES:
        if len(_SUMMARIES) > 4096:
            _SUMMARIES.clear()
        _SUMMARIES[key] = gateway.result_summary(status.run_id)
    return _SUMMARIES[key]


def _summary_known(status: JobStatus) -> bool:
    """Whether `_describe` can answer for this status without reading storage."""
    if status_of(status) in ACTIVE:
        return True
    key = (str(status.run_id), str(status.state), status.ended)
    if key not in _SUMMARIES:
        return False
    summary = _SUMMARIES[key]
    return status.state is not JobState.COMPLETED or bool(summary and summary.get("files"))


def _task_answer(gateway: JobGateway, row: GasfluxTask, status: JobStatus) -> dict[str, Any]:
    """The document's task object for GET /task."""
    task_status = status_of(status)
    data: dict[str, Any] = {
        "task_id": row.job_id,
        "status": str(task_status),
        "message": _task_message(row, status, task_status),
        "updated_at": _updated_at(row, status),
        "created_at": _epoch(row.created_at),
        "priority": row.priority,
        "filename": row.filename,
    }
    if task_status in ACTIVE:
        eta = status.eta_seconds
        data["progress"] = {
            "stage": status.stage,
            "completed_steps": status.completed_steps or 0,
            "total_steps": status.total_steps or 5,
            "percent": round(status.percent, 1),
            "estimated_time_remaining": round(eta) if eta is not None else None,
        }
        return data
    summary = _summary(gateway, status)
    duration = (summary or {}).get("processing_time_seconds") or status.duration_seconds
    data["processing_time_seconds"] = round(duration, 2) if duration is not None else None
    if task_status is TaskStatus.COMPLETED:
        data["results"] = _results(row.job_id, summary, lambda: gateway.result_files(row.flow_run_id))
        if summary:
            data["emission_rates_kg_h"] = summary.get("emission_rates_kg_h", {})
            data["warnings"] = summary.get("warnings", [])
        return data
    if summary and summary.get("status") == "failed":
        data["error"] = Msg.FAILED_WITH.format(summary.get("error"))
        data["error_details"] = summary.get("error_details", {})
    else:
        code = {JobState.CRASHED: ErrorCode.CRASHED, JobState.CANCELLED: ErrorCode.CANCELLED}.get(
            status.state, ErrorCode.MARKED_FAILED
        )
        data["error"] = Msg.FAILED_WITH.format(status.message or status.state_name)
        data["error_details"] = {"stage": status.stage, "error_code": str(code)}
    return data


def describe_task(gateway: JobGateway, task_id: str, *, blocking: bool = True) -> dict[str, Any] | None:
    """The document's task object; TaskNotFound if there is none. With `blocking=False`, None whenever
    the answer would need the database, Prefect or storage (clients poll this every few seconds)."""
    if not blocking:
        row = _known_row(task_id)
        status = gateway.peek_status(row.flow_run_id) if row else None
        if row is None or status is None or not _summary_known(status):
            return None
        return _task_answer(gateway, row, status)
    row = find_task(task_id)
    if row is None:
        raise TaskNotFound(task_id)
    try:
        status = gateway.status(row.flow_run_id)
    except JobNotFound:
        raise TaskNotFound(task_id) from None
    return _task_answer(gateway, row, status)


def _statuses(gateway: JobGateway, run_ids: list[str]) -> dict[str, JobStatus]:
    out: dict[str, JobStatus] = {}
    for start in range(0, len(run_ids), STATUS_CHUNK):
        for run_id, status in gateway.statuses(run_ids[start : start + STATUS_CHUNK]).items():
            out[str(run_id)] = status
    return out


# --- census (/health, /stats) --------------------------------------------------------------------------
def take_census(gateway: JobGateway) -> TaskCensus:
    """Tasks by status and the most recent ones, from the rows and Prefect (never from memory)."""
    try:
        rows = repository.all_tasks()
        statuses = _statuses(gateway, [r.flow_run_id for r in rows])
    except Exception as exc:  # Prefect or the DB unreachable: /health reports it instead of failing
        log.warning("gasflux census failed: %s", exc)
        return TaskCensus(time.time(), {}, 0, [], error=f"{type(exc).__name__}: {exc}")
    by_status = {str(s): 0 for s in TaskStatus}
    recent = []
    now = time.time()
    for row in rows:
        status = statuses.get(row.flow_run_id)
        if status is None:
            continue
        task_status = status_of(status)
        by_status[str(task_status)] += 1
        if len(recent) < RECENT_TASKS:
            recent.append(
                {
                    "task_id": row.job_id,
                    "status": str(task_status),
                    "age_seconds": round(now - row.created_at.timestamp(), 1),
                    "message": _task_message(row, status, task_status),
                }
            )
    return TaskCensus(now, by_status, sum(by_status.values()), recent)


def configuration() -> dict[str, Any]:
    """GET /config: the effective settings, where files go, and the supported environment variables."""
    settings = get_settings()
    upload_url, output_url = files.folder_urls()
    values = {
        "host": settings.gasflux_host,
        "port": settings.gasflux_port,
        "debug": settings.gasflux_debug,
        "base_dir": os.getcwd(),
        "upload_folder": upload_url,
        "output_folder": output_url,
        "max_content_length": settings.gasflux_max_content_length,
        "log_level": settings.gasflux_log_level,
        "log_file": settings.gasflux_log_file,
        "cors_origins": settings.gasflux_cors_origins,
        "task_cleanup_interval": settings.gasflux_task_cleanup_interval,
        "max_task_age": settings.gasflux_max_task_age,
        "threads": settings.gasflux_threads,
        "connection_limit": settings.gasflux_connection_limit,
        "channel_timeout": settings.gasflux_channel_timeout,
        "bridge_listen": f"{settings.host}:{settings.port}",
    }
    current = {name: os.environ[name] for name in SUPPORTED_ENV if name in os.environ}
    return {
        "configuration": values,
        "environment_variables": {"supported": list(SUPPORTED_ENV), "current_values": current},
    }


# --- upload --------------------------------------------------------------------------------------------
def config_problem(handle: Any) -> str | None:
    """Refuse a config the analysis would refuse, at once instead of as a failed task."""
    from tasks.gasflux.config import GasFluxInputError, merge_config

    handle.seek(0)
    raw = handle.read(MAX_CONFIG_BYTES + 1)
    handle.seek(0)
    if len(raw) > MAX_CONFIG_BYTES:
        return f"larger than {MAX_CONFIG_BYTES} bytes"
    try:
        merge_config(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        return "not UTF-8 text"
    except GasFluxInputError as exc:
        return exc.message
    return None


def submit_upload(gateway: JobGateway, job_id: str, data_file: Any, config_file: Any) -> dict[str, Any]:
    """Store the upload, start its flow run and record the task; if Prefect refuses the run, remove the
    upload again and raise SubmitFailed (no row is written before the run exists)."""
    folder = files.upload_folder(job_id)
    data_name = files.clean_name(data_file.filename, "data.xlsx")
    size = save_upload(data_file, get_storage(), files.upload_path(folder, data_name))
    params: dict[str, Any] = {"input_path": files.upload_relpath(folder, data_name), "job_id": job_id}
    if config_file is not None:
        config_name = files.clean_name(config_file.filename, "config.yaml")
        save_upload(config_file, get_storage(), files.upload_path(folder, config_name))
        params["config_path"] = files.upload_relpath(folder, config_name)
    try:
        run_id = gateway.submit(
            JOB_TYPE,
            params,
            api=API,
            legacy_id=job_id,
            tags=[f"{JOB_ID_TAG}{job_id}", f"{PRIORITY_TAG}{Priority.NORMAL}"],
            flow_run_name=run_name("gasflux", data_name, job_id),
        )
    except Exception as exc:
        log.exception("gasflux upload %s: submission failed", job_id)
        files.delete_upload(folder)
        raise SubmitFailed(exc) from exc
    repository.add_task(job_id, str(run_id), data_name, folder, size)
    return {"status": "accepted", "job_id": job_id, "task_status_url": f"/task/{job_id}"}


# --- change, delete ------------------------------------------------------------------------------------
def update_task(
    gateway: JobGateway, row: GasfluxTask, status: str | None, priority: str | None, message: str | None
) -> dict[str, Any]:
    """Apply PUT /task: the state and priority tag on the flow run, priority and message on the row."""
    try:
        current = gateway.status(row.flow_run_id, fresh=True)
        if status is not None:
            wanted = TaskStatus(status)
            current = gateway.set_state(
                row.flow_run_id, STATE_OF_STATUS[wanted], message or Msg.MARKED.format(wanted)
            )
        if priority is not None:
            tags = [t for t in current.tags if not t.startswith(PRIORITY_TAG)] + [f"{PRIORITY_TAG}{priority}"]
            gateway.set_tags(row.flow_run_id, tags)
    except JobNotFound:
        raise TaskNotFound(row.job_id) from None
    _ROWS.drop(row.job_id)
    stored = repository.update_task(row.job_id, priority=priority, message=message)
    if stored is None:
        raise TaskNotFound(row.job_id)
    task_status = status_of(current)
    return {
        "task_id": stored.job_id,
        "status": "updated",
        "task_info": {
            "status": str(task_status),
            "message": _task_message(stored, current, task_status),
            "updated_at": _updated_at(stored, current),
            "priority": stored.priority,
        },
    }


def delete_task(gateway: JobGateway, task_id: str) -> dict[str, Any]:
    """Remove a finished task everywhere (run, files, upload, rows); TaskBusy while it is active, OSError
    if storage refuses."""
    row = find_task(task_id)
    if row is None:
        raise TaskNotFound(task_id)
    try:
        task_status = status_of(gateway.status(row.flow_run_id, fresh=True))
    except JobNotFound:
        task_status = TaskStatus.FAILED  # the flow run is gone already: remove what is left
    if task_status in ACTIVE:
        raise TaskBusy(task_status)
    _ROWS.drop(row.job_id)
    removed = remove_task(gateway, row.job_id, row.flow_run_id, row.upload_dir)
    return {
        "task_id": row.job_id,
        "status": "deleted",
        "details": {
            "folders_deleted": removed.folders_deleted,
            "total_size_deleted": removed.total_size_deleted,
            "task_status": str(task_status),
        },
    }


# --- reports -------------------------------------------------------------------------------------------
def _report(gateway: JobGateway, row: GasfluxTask, status: JobStatus) -> dict[str, Any]:
    task_status = status_of(status)
    summary = _summary(gateway, status) if status.state.is_final else None
    found = []
    if task_status is TaskStatus.COMPLETED:
        found = _results(row.job_id, summary, lambda: gateway.result_files(row.flow_run_id))
    reports = [f for f in found if f["type"] == "report"]
    main = next((f for f in reports if "_ch4_" in f["name"]), reports[0] if reports else None)
    duration = (summary or {}).get("processing_time_seconds") or (
        status.duration_seconds if status.state.is_final else None
    )
    run_directory = (summary or {}).get("run_directory")
    return {
        "task_id": row.job_id,
        "report_name": PurePosixPath(row.filename).stem,
        "status": str(task_status),
        "created_at": _epoch(row.created_at),
        "file_count": len(found),
        "total_size": sum(f["size"] for f in found),
        "processing_time_seconds": round(duration, 2) if duration is not None else None,
        "main_report": {k: main[k] for k in ("name", "size", "type", "download_url")} if main else None,
        "all_files": [{k: f[k] for k in ("name", "size", "type", "download_url")} for f in found],
        "run_directory": files.download_relpath(row.job_id, run_directory) if run_directory else None,
    }


_SORT_KEYS: dict[SortBy, Callable[[dict[str, Any]], Any]] = {
    SortBy.CREATED_AT: lambda r: r["created_at"] or 0.0,
    SortBy.TASK_ID: lambda r: r["task_id"],
    SortBy.FILE_SIZE: lambda r: r["total_size"],
    SortBy.PROCESSING_TIME: lambda r: r["processing_time_seconds"] or 0.0,
}


def list_reports(
    gateway: JobGateway, page: int, per_page: int, sort_by: SortBy, sort_order: SortOrder, status: str | None
) -> dict[str, Any]:
    """One page of the report listing (every task with a flow run, optionally of one status), sorted."""
    rows = repository.all_tasks()
    statuses = _statuses(gateway, [r.flow_run_id for r in rows])
    chosen = [
        (row, statuses[row.flow_run_id])
        for row in rows
        if row.flow_run_id in statuses
        and (status is None or str(status_of(statuses[row.flow_run_id])) == status)
    ]
    entries = [_report(gateway, row, st) for row, st in chosen]
    entries.sort(key=_SORT_KEYS[sort_by], reverse=sort_order is SortOrder.DESC)
    total = len(entries)
    pages = max(1, -(-total // per_page))
    return {
        "reports": entries[(page - 1) * per_page : page * per_page],
        "pagination": {
            "page": page,
            "per_page": per_page,
            "total_reports": total,
            "total_pages": pages,
            "has_next": page < pages,
            "has_prev": page > 1,
        },
        "filters": {"sort_by": str(sort_by), "sort_order": str(sort_order), "status": status},
    }


# --- download ------------------------------------------------------------------------------------------
def find_download(job_id: str, relpath: str) -> RunFile:
    """The result file a download URL names, if the task exists and the file is inside its run folder."""
    row = find_task(job_id)
    if row is None:
        return RunFile(Lookup.MISSING)
    return files.find_run_file(row.flow_run_id, relpath)
