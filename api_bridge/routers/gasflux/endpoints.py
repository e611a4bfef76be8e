"""002 GasFlux Web API: upload a drone flight table, poll the task, download the four result files.

Every answer is the document's envelope {"code","message","data"} with the HTTP status equal to `code`.
The document's own example clients read `job_id`, `status`, `results`, `error` at the top level, so
data's keys are mirrored there too (never replacing code/message/data): both shapes work at once.
A task is a Prefect flow run of the "gasflux" deployment; its id (job_id) is a UUID chosen here and
mapped to the flow run in the metadata DB, with the upload, the client's priority and message.
"""

from __future__ import annotations

import mimetypes
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from api_bridge import health as host
from api_bridge.errors import register_envelope
from api_bridge.gateway import get_gateway
from api_bridge.pages import static_page
from api_bridge.requests import BadBody, BodyTooLarge, read_body, read_json_object
from api_bridge.responses import file_or_stream
from api_bridge.routers.gasflux import schema, service
from api_bridge.routers.gasflux.codes import (
    ACTIVE_TASK_LIMIT,
    CONFIG_EXTENSIONS,
    CONFIG_FIELD,
    DATA_EXTENSIONS,
    DATA_FIELD,
    ERROR_RATE_LIMIT,
    VERSION,
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
    TaskCensus,
    format_uptime,
    make_route_class,
    uptime_seconds,
)
from flowbridge.settings import get_settings
from storage.filesystems import UnsafePathError
from storage.gasflux.files import Lookup, probe_storage, split_download
from storage.gasflux.models import GasfluxTask

RESERVED = ("code", "message", "data")
MAX_JSON_BODY = 64 * 1024
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


def _size_text(limit: int) -> str:
    mb = limit / (1024 * 1024)
    return f"{mb:.0f}MB" if mb >= 1 and mb == int(mb) else f"{mb:.2f}MB"


# --- monitor (census + storage probe) ------------------------------------------------------------------
def _take_census() -> TaskCensus:
    return service.take_census(get_gateway())


_probe_storage = probe_storage
MONITOR = Monitor(_take_census, _probe_storage)


# --- web page, health, stats, config -------------------------------------------------------------------
@router.get("/", include_in_schema=False)
async def index() -> Response:
    return FileResponse(static_page("gasflux.html"), media_type="text/html; charset=utf-8")


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
        "system": await _threaded(host.system_usage),
        "recent_tasks": census.recent,
    }
    return answer(200, Msg.STATS_OK, data)


@router.post("/stats/reset", **schema.STATS_RESET)
async def stats_reset() -> JSONResponse:
    return answer(200, Msg.STATS_RESET, {"timestamp": round(STATS.reset(), 3)})


@router.get("/config", **schema.CONFIG)
async def config() -> JSONResponse:
    return answer(200, Msg.CONFIG_OK, service.configuration())


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
            problem = await _threaded(service.config_problem, config_file.file)
            if problem:
                return answer(400, Msg.BAD_CONFIG.format(problem))
        job_id = str(uuid.uuid4())
        request.state.gasflux_task_id = job_id
        return await _threaded(_accept, job_id, data_file, config_file)
    finally:
        await body.close()


def _accept(job_id: str, data_file: Any, config_file: Any) -> JSONResponse:
    try:
        data = service.submit_upload(get_gateway(), job_id, data_file, config_file)
    except service.SubmitFailed as exc:
        return answer(500, Msg.SUBMIT_FAILED.format(exc.kind))
    MONITOR.invalidate()
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
    try:
        data = service.describe_task(get_gateway(), task_id, blocking=blocking)
    except service.TaskNotFound as exc:
        return _not_found(exc.task_id)
    return None if data is None else answer(200, Msg.TASK_OK, data)


async def _json_object(request: Request) -> dict[str, Any] | None:
    """The PUT body as a JSON object, or None for anything else (the caller answers the document's 400)."""
    try:
        return await read_json_object(request, max_bytes=MAX_JSON_BODY)
    except BadBody:
        return None


@router.put("/task/{task_id}", **schema.PUT_TASK)
async def put_task(task_id: str, request: Request) -> JSONResponse:
    request.state.gasflux_task_id = task_id
    row = await _threaded(service.find_task, task_id)
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
    try:
        data = service.update_task(get_gateway(), row, status, priority, message)
    except service.TaskNotFound as exc:
        return _not_found(exc.task_id)
    MONITOR.invalidate()
    return answer(200, Msg.TASK_UPDATED, data)


@router.delete("/task/{task_id}", **schema.DELETE_TASK)
async def delete_task(task_id: str, request: Request) -> JSONResponse:
    request.state.gasflux_task_id = task_id
    return await _threaded(_delete_task, task_id)


def _delete_task(task_id: str) -> JSONResponse:
    try:
        data = service.delete_task(get_gateway(), task_id)
    except service.TaskNotFound as exc:
        return _not_found(exc.task_id)
    except service.TaskBusy as exc:
        return answer(409, Msg.TASK_BUSY, {"task_status": str(exc.task_status)})
    except OSError as exc:
        return answer(500, Msg.DELETE_FAILED.format(exc.strerror or exc))
    MONITOR.invalidate()
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


def _reports(
    page: int, per_page: int, sort_by: SortBy, sort_order: SortOrder, status: str | None
) -> JSONResponse:
    data = service.list_reports(get_gateway(), page, per_page, sort_by, sort_order, status)
    return answer(200, Msg.REPORTS_OK, data)


# --- download ------------------------------------------------------------------------------------------
@router.get("/download/{filename:path}", **schema.DOWNLOAD)
async def download(filename: str, request: Request) -> Response:
    return await _threaded(_download, filename, request)


def _download(filename: str, request: Request) -> Response:
    try:
        job_id, rest = split_download(filename)
    except UnsafePathError:
        return answer(403, Msg.ACCESS_DENIED, {"filename": filename})
    request.state.gasflux_task_id = job_id
    found = service.find_download(job_id, rest)
    if found.outcome is Lookup.DENIED:
        return answer(403, Msg.ACCESS_DENIED, {"filename": filename})
    if found.outcome is Lookup.MISSING:
        return answer(404, Msg.FILE_NOT_FOUND, {"filename": filename})
    if found.outcome is Lookup.NOT_A_FILE:
        return answer(400, Msg.NOT_A_FILE, {"filename": filename})
    media = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
    # reports open in the browser when a result link is followed; the other files download
    disposition = "inline" if file_type(found.name) is FileType.REPORT else "attachment"
    return file_or_stream(
        found.local,
        found.chunks,
        found.name,
        media,
        disposition=disposition,
        streamed_disposition=f"{disposition}; filename*=UTF-8''{quote(found.name)}",
    )
