"""002 GasFlux Web API: upload a drone flight table, poll the task, download the four result files.

Every answer is the document's envelope {"code","message","data"} with the HTTP status equal to `code`.
The document's own example clients read `job_id`, `status`, `results`, `error` at the top level, so
data's keys are mirrored there too (never replacing code/message/data): both shapes work at once.
A task is a Prefect flow run of the "gasflux" deployment; its id (job_id) is a UUID chosen here and
mapped to the flow run in the metadata DB, with the upload, the client's priority and message.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
import psutil
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from sqlalchemy import select

from api_bridge.cache import RefreshingCache
from api_bridge.errors import register_envelope
from api_bridge.gateway import JobGateway, JobNotFound, JobState, JobStatus, get_gateway
from api_bridge.requests import BadBody, BodyTooLarge, read_body, save_upload
from api_bridge.routers.gasflux import schema
from api_bridge.routers.gasflux.codes import (
    ACTIVE,
    ACTIVE_TASK_LIMIT,
    API,
    CONFIG_EXTENSIONS,
    CONFIG_FIELD,
    DATA_EXTENSIONS,
    DATA_FIELD,
    ERROR_RATE_LIMIT,
    JOB_ID_TAG,
    JOB_TYPE,
    RECENT_TASKS,
    STATE_OF_STATUS,
    STATUS_OF_STATE,
    SUPPORTED_ENV,
    VERSION,
    ErrorCode,
    FileType,
    Health,
    Msg,
    Priority,
    SortBy,
    SortOrder,
    TaskStatus,
    file_type,
)
from api_bridge.routers.gasflux.stats import (
    STATS,
    Monitor,
    StorageProbe,
    TaskCensus,
    format_uptime,
    make_route_class,
    uptime_seconds,
)
from deployments.priority import PRIORITY_TAG  # the runner and workers start runs in its order
from flowbridge.settings import get_settings
from storage.filesystems import RESULT_SUMMARY, UnsafePathError, get_storage, safe_relpath
from storage.gasflux.models import GasfluxTask
from storage.metadata import session_scope
from tasks.gasflux.cleanup import remove_task

log = logging.getLogger("flowbridge.gasflux")
RESERVED = ("code", "message", "data")
PAGE_HTML = Path(__file__).resolve().parents[1] / "static" / "gasflux.html"
MAX_JSON_BODY = 64 * 1024
MAX_CONFIG_BYTES = 1024 * 1024
STATUS_CHUNK = 200  # the Prefect API's default page size
T = TypeVar("T")


def answer(code: int, message: str, data: dict[str, Any] | None = None) -> JSONResponse:
    """The documented envelope, with data's keys mirrored at the top level for the example clients."""
    data = data or {}
    body: dict[str, Any] = {"code": code, "message": message, "data": data}
    body.update({k: v for k, v in data.items() if k not in RESERVED})
    return JSONResponse(body, status_code=code)


def _error(code: int, message: str) -> Response:
    return answer(code, message)


router = APIRouter(tags=["002 GasFlux"], route_class=make_route_class(_error, Msg.BUSY, Msg.TIMEOUT))
for _prefix in ("/task/", "/upload", "/reports", "/download/", "/stats"):
    register_envelope(_prefix, _error)

_limiter: anyio.CapacityLimiter | None = None


async def _threaded(fn: Callable[..., T], *args: Any) -> T:
    """Blocking work on GasFlux's own thread pool, sized by GASFLUX_THREADS like the old Waitress server."""
    global _limiter
    if _limiter is None:
        _limiter = anyio.CapacityLimiter(max(1, get_settings().gasflux_threads))
    return await anyio.to_thread.run_sync(fn, *args, limiter=_limiter)


# --- helpers -------------------------------------------------------------------------------------------
def _epoch(value: datetime | None) -> float | None:
    return round(value.timestamp(), 3) if value else None


def _canonical(task_id: str) -> str | None:
    try:
        return str(uuid.UUID(task_id.strip()))
    except (ValueError, AttributeError):
        return None


def _read_row(canonical: str) -> GasfluxTask:
    with session_scope() as session:
        row = session.get(GasfluxTask, canonical)
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


def _load(task_id: str) -> GasfluxTask | None:
    canonical = _canonical(task_id)
    if canonical is None:
        return None
    try:
        return _ROWS.get(canonical, fresh=True)
    except LookupError:
        return None


def _known_row(task_id: str) -> GasfluxTask | None:
    """The task's row without touching the database (see api_bridge/cache.py), else None."""
    canonical = _canonical(task_id)
    return _ROWS.peek(canonical) if canonical else None


def upload_root() -> str:
    """GASFLUX_UPLOAD_FOLDER as a storage-relative folder (an absolute or unsafe one falls back)."""
    try:
        return safe_relpath(get_settings().gasflux_upload_folder.strip("/") or "uploads")
    except UnsafePathError:
        return f"uploads/{API}"


def _clean_name(filename: str, default: str) -> str:
    """The client's file name without folders or characters storage paths refuse (keeps the suffix)."""
    base = PureWindowsPath(PurePosixPath(filename or "").name).name
    base = re.sub(r"[^\w\-. ()]", "_", base).lstrip(". ") or default
    stem, suffix = os.path.splitext(base)
    return f"{stem[:150] or 'data'}{suffix[:10].lower()}"


def _size_text(limit: int) -> str:
    mb = limit / (1024 * 1024)
    return f"{mb:.0f}MB" if mb >= 1 and mb == int(mb) else f"{mb:.2f}MB"


def _status_of(status: JobStatus) -> TaskStatus:
    return STATUS_OF_STATE[status.state]


def _results(
    job_id: str, summary: dict[str, Any] | None, fallback: Callable[[], list[Any]]
) -> list[dict[str, Any]]:
    if summary and summary.get("files"):
        files = [(f["rel"], int(f.get("size") or 0)) for f in summary["files"]]
    else:
        files = [(f.path, f.size) for f in fallback() if f.path != RESULT_SUMMARY]
    out = []
    for rel, size in files:
        rel_path = f"{job_id}/{rel}"
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


def _describe(gateway: JobGateway, row: GasfluxTask, status: JobStatus) -> dict[str, Any]:
    """The document's task object for GET /task."""
    task_status = _status_of(status)
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


def _statuses(gateway: JobGateway, run_ids: list[str]) -> dict[str, JobStatus]:
    out: dict[str, JobStatus] = {}
    for start in range(0, len(run_ids), STATUS_CHUNK):
        for run_id, status in gateway.statuses(run_ids[start : start + STATUS_CHUNK]).items():
            out[str(run_id)] = status
    return out


def _all_tasks() -> list[GasfluxTask]:
    with session_scope() as session:
        return list(session.scalars(select(GasfluxTask).order_by(GasfluxTask.created_at.desc())))


# --- monitor (census + storage probe) ------------------------------------------------------------------
def _take_census() -> TaskCensus:
    try:
        rows = _all_tasks()
        statuses = _statuses(get_gateway(), [r.flow_run_id for r in rows])
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
        task_status = _status_of(status)
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


def _probe_storage() -> StorageProbe:
    storage = get_storage()

    def writable(path: str) -> bool:
        try:
            storage.write_bytes(path, b"ok")
            storage.delete(path)
            return True
        except Exception:
            return False

    return StorageProbe(
        uploads_writable=writable(storage.path(upload_root(), ".write-probe")),
        outputs_writable=writable(storage.path("runs", ".gasflux-write-probe")),
    )


MONITOR = Monitor(_take_census, _probe_storage)


# --- web page, health, stats, config -------------------------------------------------------------------
@router.get("/", include_in_schema=False)
async def index() -> Response:
    return FileResponse(PAGE_HTML, media_type="text/html; charset=utf-8")


@router.get("/health", **schema.HEALTH)
async def health() -> JSONResponse:
    census, storage = await MONITOR.current()
    stats = STATS.snapshot()
    issues = []
    if stats["error_rate_percent"] > ERROR_RATE_LIMIT:
        issues.append(Msg.ISSUE_ERROR_RATE.format(stats["error_rate_percent"]))
    if census.active > ACTIVE_TASK_LIMIT:
        issues.append(Msg.ISSUE_ACTIVE.format(census.active))
    if not storage.uploads_writable:
        issues.append(Msg.ISSUE_UPLOADS)
    if not storage.outputs_writable:
        issues.append(Msg.ISSUE_OUTPUTS)
    if census.error:
        issues.append(Msg.ISSUE_TASKS_UNKNOWN.format(census.error))
    data: dict[str, Any] = {
        "status": str(Health.DEGRADED if issues else Health.HEALTHY),
        "version": VERSION,
        "timestamp": round(time.time(), 3),
        "uptime": format_uptime(uptime_seconds()),
        "storage": {
            "uploads_writable": storage.uploads_writable,
            "outputs_writable": storage.outputs_writable,
        },
        "tasks": {
            "active_count": census.active,
            "total_tracked": census.total_tracked,
            "total_processed": census.completed + census.failed,
            "success_rate_percent": census.success_rate_percent,
        },
        "performance": {
            "requests_per_second": stats["requests_per_second"],
            "avg_response_time_ms": stats["avg_response_time_ms"],
            "error_rate_percent": stats["error_rate_percent"],
        },
    }
    if issues:
        data["issues"] = issues
        return answer(503, Msg.HEALTH_DEGRADED, data)
    return answer(200, Msg.HEALTH_OK, data)


def _system() -> dict[str, float]:
    memory = psutil.virtual_memory()
    storage = get_storage()
    folder = storage.local_path(storage.root) or str(get_settings().data_dir)
    disk = psutil.disk_usage(folder if os.path.exists(folder) else "/")
    gb = 1024**3
    return {
        "memory_usage_percent": round(memory.percent, 1),
        "memory_used_gb": round((memory.total - memory.available) / gb, 2),
        "memory_total_gb": round(memory.total / gb, 2),
        "disk_usage_percent": round(disk.percent, 1),
        "disk_used_gb": round(disk.used / gb, 2),
        "disk_total_gb": round(disk.total / gb, 2),
    }


@router.get("/stats", **schema.STATS)
async def stats() -> JSONResponse:
    census, _storage = await MONITOR.current(max_age=1.0, wait=True)
    snap = STATS.snapshot()
    uptime = uptime_seconds()
    data = {
        "summary": {
            "uptime_seconds": uptime,
            "uptime_formatted": format_uptime(uptime),
            "requests_total": snap["requests_total"],
            "requests_per_second": snap["requests_per_second"],
            "error_rate_percent": snap["error_rate_percent"],
            "active_tasks": census.active,
        },
        "requests": {k: snap[k] for k in ("by_method", "by_status", "top_endpoints")},
        "tasks": {
            "total_created": census.total_tracked,
            "total_completed": census.completed,
            "total_failed": census.failed,
            "success_rate_percent": census.success_rate_percent,
            "by_status": census.by_status,
        },
        "performance": {
            k: snap[k] for k in ("avg_response_time_ms", "max_response_time_ms", "min_response_time_ms")
        },
        "system": await _threaded(_system),
        "recent_tasks": census.recent,
    }
    return answer(200, Msg.STATS_OK, data)


@router.post("/stats/reset", **schema.STATS_RESET)
async def stats_reset() -> JSONResponse:
    return answer(200, Msg.STATS_RESET, {"timestamp": round(STATS.reset(), 3)})


@router.get("/config", **schema.CONFIG)
async def config() -> JSONResponse:
    settings = get_settings()
    storage = get_storage()
    configuration = {
        "host": settings.gasflux_host,
        "port": settings.gasflux_port,
        "debug": settings.gasflux_debug,
        "base_dir": os.getcwd(),
        "upload_folder": storage.full_url(storage.path(upload_root())),
        "output_folder": storage.full_url(storage.path("runs")),
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
    data = {
        "configuration": configuration,
        "environment_variables": {"supported": list(SUPPORTED_ENV), "current_values": current},
    }
    return answer(200, Msg.CONFIG_OK, data)


# --- upload --------------------------------------------------------------------------------------------
@router.post("/upload", status_code=202, **schema.UPLOAD)
async def upload(request: Request) -> JSONResponse:
    limit = get_settings().gasflux_max_content_length
    try:
        body = await read_body(request, max_bytes=limit, max_files=4)
    except BodyTooLarge:
        return answer(413, Msg.TOO_LARGE.format(_size_text(limit)))
    except BadBody as exc:  # includes JSON nested deeper than the parser goes
        return answer(400, Msg.BAD_BODY.format(exc))
    try:
        data_file = body.files.get(DATA_FIELD)
        if data_file is None:
            return answer(400, Msg.NO_FILE)
        if not data_file.filename:
            return answer(400, Msg.NO_FILENAME)
        if not data_file.filename.lower().endswith(DATA_EXTENSIONS):
            return answer(400, Msg.BAD_DATA_TYPE)
        config_file = body.files.get(CONFIG_FIELD)
        if config_file is not None and not config_file.filename:
            config_file = None  # an empty optional <input type=file> posts a nameless part
        if config_file is not None and not config_file.filename.lower().endswith(CONFIG_EXTENSIONS):
            return answer(400, Msg.BAD_CONFIG_TYPE)
        if not data_file.size:
            return answer(400, Msg.EMPTY_FILE)
        if config_file is not None:
            problem = await _threaded(_config_problem, config_file.file)
            if problem:
                return answer(400, Msg.BAD_CONFIG.format(problem))
        job_id = str(uuid.uuid4())
        request.state.gasflux_task_id = job_id
        return await _threaded(_accept, job_id, data_file, config_file)
    finally:
        await body.close()


def _config_problem(handle: Any) -> str | None:
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


def _accept(job_id: str, data_file: Any, config_file: Any) -> JSONResponse:
    storage = get_storage()
    folder = f"{upload_root()}/{job_id}"
    data_name = _clean_name(data_file.filename, "data.xlsx")
    size = save_upload(data_file, storage, storage.path(folder, data_name))
    params: dict[str, Any] = {"input_path": f"{folder}/{data_name}", "job_id": job_id}
    if config_file is not None:
        config_name = _clean_name(config_file.filename, "config.yaml")
        save_upload(config_file, storage, storage.path(folder, config_name))
        params["config_path"] = f"{folder}/{config_name}"
    try:
        run_id = get_gateway().submit(
            JOB_TYPE,
            params,
            api=API,
            legacy_id=job_id,
            tags=[f"{JOB_ID_TAG}{job_id}", f"{PRIORITY_TAG}{Priority.NORMAL}"],
            flow_run_name=f"gasflux-{job_id}",
        )
    except Exception as exc:
        log.exception("gasflux upload %s: submission failed", job_id)
        storage.delete(storage.path(folder))
        return answer(500, Msg.SUBMIT_FAILED.format(type(exc).__name__))
    with session_scope() as session:
        session.add(
            GasfluxTask(
                job_id=job_id, flow_run_id=str(run_id), filename=data_name, upload_dir=folder, size_bytes=size
            )
        )
    MONITOR.invalidate()
    data = {"status": "accepted", "job_id": job_id, "task_status_url": f"/task/{job_id}"}
    return answer(202, Msg.ACCEPTED, data)


# --- tasks ---------------------------------------------------------------------------------------------
def _not_found(task_id: str) -> JSONResponse:
    return answer(404, Msg.TASK_NOT_FOUND, {"task_id": task_id})


@router.get("/task/{task_id}", **schema.GET_TASK)
async def get_task(task_id: str, request: Request) -> JSONResponse:
    request.state.gasflux_task_id = task_id
    # Clients poll this every few seconds: answer from memory when nothing needs reading.
    if (quick := _get_task(task_id, blocking=False)) is not None:
        return quick
    return await _threaded(_get_task, task_id)


def _get_task(task_id: str, *, blocking: bool = True) -> JSONResponse | None:
    """The task answer; with `blocking=False`, None whenever it would need the database, Prefect or
    storage."""
    gateway = get_gateway()
    if not blocking:
        row = _known_row(task_id)
        status = gateway.peek_status(row.flow_run_id) if row else None
        if row is None or status is None or not _summary_known(status):
            return None
        return answer(200, Msg.TASK_OK, _describe(gateway, row, status))
    row = _load(task_id)
    if row is None:
        return _not_found(task_id)
    try:
        status = gateway.status(row.flow_run_id)
    except JobNotFound:
        return _not_found(task_id)
    return answer(200, Msg.TASK_OK, _describe(gateway, row, status))


def _summary_known(status: JobStatus) -> bool:
    """Whether `_describe` can answer for this status without reading storage."""
    if _status_of(status) in ACTIVE:
        return True
    key = (str(status.run_id), str(status.state), status.ended)
    if key not in _SUMMARIES:
        return False
    summary = _SUMMARIES[key]
    return status.state is not JobState.COMPLETED or bool(summary and summary.get("files"))


async def _json_object(request: Request) -> dict[str, Any] | None:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_JSON_BODY:
        return None
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_JSON_BODY:
            return None
    try:
        value = json.loads(bytes(raw))
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested deeper than the parser goes
        return None
    return value if isinstance(value, dict) else None


@router.put("/task/{task_id}", **schema.PUT_TASK)
async def put_task(task_id: str, request: Request) -> JSONResponse:
    request.state.gasflux_task_id = task_id
    row = await _threaded(_load, task_id)
    if row is None:
        return _not_found(task_id)
    body = await _json_object(request)
    if body is None:
        return answer(400, Msg.NOT_JSON)
    status = body.get("status")
    priority = body.get("priority")
    message = body.get("message")
    if status is not None and status not in TaskStatus.__members__.values():
        return answer(400, Msg.BAD_STATUS)
    if priority is not None and priority not in Priority.__members__.values():
        return answer(400, Msg.BAD_PRIORITY)
    if message is not None and (not isinstance(message, str) or "\x00" in message):
        return answer(400, Msg.BAD_MESSAGE)  # PostgreSQL text (ours and Prefect's) cannot hold NUL
    if status is None and priority is None and message is None:
        return answer(400, Msg.NOTHING_TO_UPDATE)
    return await _threaded(_update_task, row, status, priority, message)


def _update_task(
    row: GasfluxTask, status: str | None, priority: str | None, message: str | None
) -> JSONResponse:
    gateway = get_gateway()
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
        return _not_found(row.job_id)
    _ROWS.drop(row.job_id)
    with session_scope() as session:
        stored = session.get(GasfluxTask, row.job_id)
        if stored is None:
            return _not_found(row.job_id)
        if priority is not None:
            stored.priority = priority
        if message is not None:
            stored.message = message
            stored.message_at = datetime.now(UTC)
        row = stored
    MONITOR.invalidate()
    task_status = _status_of(current)
    data = {
        "task_id": row.job_id,
        "status": "updated",
        "task_info": {
            "status": str(task_status),
            "message": _task_message(row, current, task_status),
            "updated_at": _updated_at(row, current),
            "priority": row.priority,
        },
    }
    return answer(200, Msg.TASK_UPDATED, data)


@router.delete("/task/{task_id}", **schema.DELETE_TASK)
async def delete_task(task_id: str, request: Request) -> JSONResponse:
    request.state.gasflux_task_id = task_id
    return await _threaded(_delete_task, task_id)


def _delete_task(task_id: str) -> JSONResponse:
    row = _load(task_id)
    if row is None:
        return _not_found(task_id)
    gateway = get_gateway()
    try:
        task_status = _status_of(gateway.status(row.flow_run_id, fresh=True))
    except JobNotFound:
        task_status = TaskStatus.FAILED  # the flow run is gone already: remove what is left
    if task_status in ACTIVE:
        return answer(409, Msg.TASK_BUSY, {"task_status": str(task_status)})
    try:
        _ROWS.drop(row.job_id)
        removed = remove_task(gateway, row.job_id, row.flow_run_id, row.upload_dir)
    except OSError as exc:
        return answer(500, Msg.DELETE_FAILED.format(exc.strerror or exc))
    MONITOR.invalidate()
    data = {
        "task_id": row.job_id,
        "status": "deleted",
        "details": {
            "folders_deleted": removed.folders_deleted,
            "total_size_deleted": removed.total_size_deleted,
            "task_status": str(task_status),
        },
    }
    return answer(200, Msg.TASK_DELETED, data)


# --- reports -------------------------------------------------------------------------------------------
def _int_param(value: str | None, default: int, name: str) -> int | str:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        return f"{name} must be an integer"


@router.get("/reports", **schema.REPORTS)
async def reports(request: Request) -> JSONResponse:
    query = request.query_params
    page = _int_param(query.get("page"), 1, "page")
    per_page = _int_param(query.get("per_page"), 20, "per_page")
    if isinstance(page, str):
        return answer(400, Msg.BAD_PARAM.format(page))
    if isinstance(per_page, str) or not 1 <= per_page <= 100:
        return answer(400, Msg.BAD_PARAM.format("per_page must be between 1 and 100"))
    if page < 1:
        return answer(400, Msg.BAD_PARAM.format("page must be 1 or greater"))
    if page > schema.MAX_PAGE:
        return answer(400, Msg.BAD_PARAM.format(f"page must be {schema.MAX_PAGE} or less"))
    sort_by = query.get("sort_by") or SortBy.CREATED_AT
    if sort_by not in SortBy.__members__.values():
        return answer(400, Msg.BAD_PARAM.format(f"sort_by must be one of {', '.join(SortBy)}"))
    sort_order = query.get("sort_order") or SortOrder.DESC
    if sort_order not in SortOrder.__members__.values():
        return answer(400, Msg.BAD_PARAM.format("sort_order must be asc or desc"))
    status = query.get("status") or None
    if status is not None and status not in TaskStatus.__members__.values():
        return answer(400, Msg.BAD_PARAM.format(f"status must be one of {', '.join(TaskStatus)}"))
    return await _threaded(_reports, page, per_page, SortBy(sort_by), SortOrder(sort_order), status)


def _report(gateway: JobGateway, row: GasfluxTask, status: JobStatus) -> dict[str, Any]:
    task_status = _status_of(status)
    summary = _summary(gateway, status) if status.state.is_final else None
    files = []
    if task_status is TaskStatus.COMPLETED:
        files = _results(row.job_id, summary, lambda: gateway.result_files(row.flow_run_id))
    reports = [f for f in files if f["type"] == "report"]
    main = next((f for f in reports if "_ch4_" in f["name"]), reports[0] if reports else None)
    duration = (summary or {}).get("processing_time_seconds") or (
        status.duration_seconds if status.state.is_final else None
    )
    run_directory = (summary or {}).get("run_directory")
    return {
        "task_id": row.job_id,
        "report_name": Path(row.filename).stem,
        "status": str(task_status),
        "created_at": _epoch(row.created_at),
        "file_count": len(files),
        "total_size": sum(f["size"] for f in files),
        "processing_time_seconds": round(duration, 2) if duration is not None else None,
        "main_report": {k: main[k] for k in ("name", "size", "type", "download_url")} if main else None,
        "all_files": [{k: f[k] for k in ("name", "size", "type", "download_url")} for f in files],
        "run_directory": f"{row.job_id}/{run_directory}" if run_directory else None,
    }


_SORT_KEYS: dict[SortBy, Callable[[dict[str, Any]], Any]] = {
    SortBy.CREATED_AT: lambda r: r["created_at"] or 0.0,
    SortBy.TASK_ID: lambda r: r["task_id"],
    SortBy.FILE_SIZE: lambda r: r["total_size"],
    SortBy.PROCESSING_TIME: lambda r: r["processing_time_seconds"] or 0.0,
}


def _reports(
    page: int, per_page: int, sort_by: SortBy, sort_order: SortOrder, status: str | None
) -> JSONResponse:
    gateway = get_gateway()
    rows = _all_tasks()
    statuses = _statuses(gateway, [r.flow_run_id for r in rows])
    chosen = [
        (row, statuses[row.flow_run_id])
        for row in rows
        if row.flow_run_id in statuses
        and (status is None or str(_status_of(statuses[row.flow_run_id])) == status)
    ]
    entries = [_report(gateway, row, st) for row, st in chosen]
    entries.sort(key=_SORT_KEYS[sort_by], reverse=sort_order is SortOrder.DESC)
    total = len(entries)
    pages = max(1, -(-total // per_page))
    data = {
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
    return answer(200, Msg.REPORTS_OK, data)


# --- download ------------------------------------------------------------------------------------------
@router.get("/download/{filename:path}", **schema.DOWNLOAD)
async def download(filename: str, request: Request) -> Response:
    return await _threaded(_download, filename, request)


def _download(filename: str, request: Request) -> Response:
    try:
        relpath = safe_relpath(filename)
    except UnsafePathError:
        return answer(403, Msg.ACCESS_DENIED, {"filename": filename})
    job_id, _, rest = relpath.partition("/")
    request.state.gasflux_task_id = job_id
    row = _load(job_id)
    if row is None or rest == RESULT_SUMMARY:
        return answer(404, Msg.FILE_NOT_FOUND, {"filename": filename})
    storage = get_storage()
    run_dir = storage.run_dir(row.flow_run_id)
    target = storage.run_path(row.flow_run_id, rest) if rest else run_dir
    local = storage.local_path(target)
    if local is not None and os.path.lexists(local):
        root = os.path.realpath(run_dir)
        if not os.path.realpath(local).startswith(root + os.sep) and os.path.realpath(local) != root:
            return answer(403, Msg.ACCESS_DENIED, {"filename": filename})
    if not storage.exists(target):
        return answer(404, Msg.FILE_NOT_FOUND, {"filename": filename})
    if not storage.is_file(target):
        return answer(400, Msg.NOT_A_FILE, {"filename": filename})
    name = PurePosixPath(rest).name
    media = mimetypes.guess_type(name)[0] or "application/octet-stream"
    # reports open in the browser when a result link is followed; the other files download
    disposition = "inline" if file_type(name) is FileType.REPORT else "attachment"
    if local is not None:
        return FileResponse(local, media_type=media, filename=name, content_disposition_type=disposition)
    headers = {"Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(name)}"}
    return StreamingResponse(storage.iter_chunks(target), media_type=media, headers=headers)
