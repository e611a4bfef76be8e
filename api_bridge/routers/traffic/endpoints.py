"""000 traffic-flow prediction: upload a CSV, start a forecast by work_id, poll "NN%", download.

Every answer is HTTP 200 with the document's `ret` code (plus a `msg` naming the problem), as the old
Flask service did; a GET on a POST-only endpoint answers that endpoint's "wrong method" code. The
upload's work_id and the run's work_id are both accepted everywhere, with or without dashes.
"""

from __future__ import annotations

import logging
import math
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api_bridge.errors import Envelope, register_envelope
from api_bridge.gateway import JobGateway, JobNotFound, JobState, get_gateway
from api_bridge.requests import BadBody, Body, BodyTooLarge, read_body, save_upload
from api_bridge.routers.traffic.codes import (
    API,
    BOUNDS_FILE,
    CSV_FILE,
    FORECAST_FILE,
    HEALTH_MESSAGE,
    PROGRESS_LINKS,
    START_BODY,
    START_LINKS,
    UPLOAD_BODY,
    UPLOAD_FIELD,
    UPLOAD_LINKS,
    WORK_ID_BODY,
    DownloadAnswer,
    DownloadRet,
    FileError,
    HealthAnswer,
    ProgressAnswer,
    ProgressRet,
    StartAnswer,
    StartRet,
    UploadAnswer,
    UploadRet,
)
from flowbridge.settings import get_settings
from storage.filesystems import Storage, UnsafePathError, get_storage, safe_part
from storage.jobs import JobRun

router = APIRouter(tags=["000 traffic forecast"])
log = logging.getLogger("flowbridge.traffic")
JOB_TYPE = "traffic_forecast"
SMALL_BODY = 1024 * 1024
# The document gives every endpoint but the heartbeat POST only; the other methods answer the endpoint's
# "wrong method" code, outside the OpenAPI document.
OTHER_METHODS = ["GET", "PUT", "DELETE", "PATCH"]


def _ret(ret: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"ret": ret, **extra})


def _ret_envelope(bad_request: str, wrong_method: str, server_error: str, **extra: str) -> Envelope:
    """What an endpoint answers when the framework or an unexpected error answers for it: HTTP 200 with the
    endpoint's documented code (an unknown path below it keeps its 404)."""

    def envelope(status: int, message: str) -> Response:
        if status == 404:
            return JSONResponse({"ret": bad_request, "msg": message, **extra}, status_code=404)
        if status >= 500:
            return _ret(server_error, msg=f"服务器异常: {message}", **extra)
        return _ret(wrong_method if status == 405 else bad_request, msg=message, **extra)

    return envelope


def _file_envelope(ret: str) -> Envelope:
    return lambda status, message: JSONResponse({"ret": ret, "msg": message}, status_code=status)


# 4002 is the document's only "server error" code; the other endpoints answer their failure code.
register_envelope("/upload_file", _ret_envelope(UploadRet.UNKNOWN, UploadRet.UNKNOWN, UploadRet.UNKNOWN))
register_envelope(
    "/get_flow", _ret_envelope(StartRet.BAD_WORK_ID, StartRet.WRONG_METHOD, StartRet.SERVER_ERROR)
)
register_envelope(
    "/get_resu_process",
    _ret_envelope(ProgressRet.FAILED, ProgressRet.WRONG_METHOD, ProgressRet.FAILED, process="0%"),
)
register_envelope(
    "/get_download_resu",
    _ret_envelope(DownloadRet.BAD_WORK_ID, DownloadRet.WRONG_METHOD, DownloadRet.BAD_WORK_ID),
)
register_envelope("/static/upload/", _file_envelope(UploadRet.UNKNOWN))
register_envelope("/static/download/", _file_envelope(DownloadRet.BAD_WORK_ID))
register_envelope(
    "/healthcheck.do",
    lambda status, message: JSONResponse({"success": False, "msg": message}, status_code=status),
)


def _upload_path(storage: Storage, work_id: str) -> str:
    return storage.upload_path(API, work_id, f"{work_id}.csv")


def _canonical(work_id: str) -> str | None:
    """The dashed lowercase form of a UUID work_id, or None when it is not one."""
    try:
        return str(uuid.UUID(work_id.strip()))
    except (ValueError, AttributeError):
        return None


async def _params(request: Request) -> Body:
    return await read_body(request, max_bytes=SMALL_BODY, max_files=0)


@router.get("/healthcheck.do", operation_id="traffic_healthcheck_get", response_model=HealthAnswer)
@router.post("/healthcheck.do", operation_id="traffic_healthcheck_post", response_model=HealthAnswer)
async def healthcheck() -> JSONResponse:
    return JSONResponse({"success": True, "msg": HEALTH_MESSAGE})


@router.post(
    "/upload_file",
    operation_id="traffic_upload_file",
    summary="Upload the traffic CSV (multipart field flow_file)",
    response_model=UploadAnswer,
    responses={200: {"links": UPLOAD_LINKS}},
    openapi_extra=UPLOAD_BODY,
)
async def upload_file(request: Request) -> JSONResponse:
    if request.method != "POST":
        return _ret(
            UploadRet.UNKNOWN,
            msg="请求方式错误，需要POST请求 (POST multipart/form-data with field flow_file)",
        )
    limit = get_settings().max_upload_bytes
    try:
        body = await read_body(request, max_bytes=limit, max_files=4)
    except BodyTooLarge:
        return _ret(
            UploadRet.UNKNOWN, msg=f"文件过大: the upload exceeds the {limit // (1024 * 1024)} MB limit"
        )
    except BadBody as exc:
        return _ret(UploadRet.UNKNOWN, msg=str(exc))
    try:
        upload = body.files.get(UPLOAD_FIELD)
        if upload is None:
            sent = ", ".join(sorted(body.files)) or "none"
            return _ret(
                UploadRet.WRONG_KEY,
                msg=f"文件上传key错误: the file field must be named flow_file (got {sent})",
            )
        work_id = str(uuid.uuid4())
        storage = get_storage()
        size = await run_in_threadpool(save_upload, upload, storage, _upload_path(storage, work_id))
        log.info("upload %s: %s (%d bytes)", work_id, upload.filename, size)
        return _ret(UploadRet.OK, work_id=work_id, file_url=f"static/upload/{work_id}.csv")
    finally:
        await body.close()


@router.post(
    "/get_flow",
    operation_id="traffic_get_flow",
    summary="Start a forecast on an upload",
    response_model=StartAnswer,
    responses={200: {"links": START_LINKS}},
    openapi_extra=START_BODY,
)
async def get_flow(request: Request) -> JSONResponse:
    if request.method != "POST":
        return _ret(StartRet.WRONG_METHOD, msg="请求方式错误，需要POST请求")
    try:
        body = await _params(request)
    except (BadBody, BodyTooLarge) as exc:
        return _ret(StartRet.BAD_WORK_ID, msg=str(exc))
    work_id = _canonical(body.fields.get("work_id", ""))
    storage = get_storage()
    if work_id is None:
        return _ret(StartRet.BAD_WORK_ID, msg="work_id is missing or is not a UUID")
    upload_id = await run_in_threadpool(_resolve_upload, get_gateway(), storage, work_id)
    if upload_id is None:
        return _ret(StartRet.BAD_WORK_ID, msg=f"no uploaded file has work_id {work_id}")
    problem = await run_in_threadpool(_quick_check, storage, _upload_path(storage, upload_id))
    if problem:
        return _ret(StartRet.BAD_FILE, msg=problem)
    from flows.traffic.forecast import TrafficForecastParams

    options = {
        k: body.fields[k] for k in ("horizon", "interval_level", "holiday_country") if body.fields.get(k)
    }
    try:
        params = TrafficForecastParams(input_path=f"uploads/{API}/{upload_id}/{upload_id}.csv", **options)
    except ValidationError as exc:
        names = ", ".join(str(e["loc"][0]) for e in exc.errors())
        return _ret(StartRet.BAD_FILE, msg=f"invalid forecast parameter(s): {names}")
    run_work_id = str(uuid.uuid4())
    try:
        await run_in_threadpool(
            get_gateway().submit,
            JOB_TYPE,
            params.model_dump(mode="json"),
            api=API,
            legacy_id=run_work_id,
            parent_id=upload_id,
            tags=[f"work_id:{run_work_id}"],
        )
    except Exception as exc:  # the legacy contract has a code for exactly this
        log.exception("get_flow %s: submission failed", upload_id)
        return _ret(StartRet.SERVER_ERROR, msg=f"服务器异常: could not start the job ({type(exc).__name__})")
    return _ret(StartRet.OK, work_id=run_work_id, download_url=f"static/download/{run_work_id}.csv")


def _resolve_upload(gateway: JobGateway, storage: Storage, work_id: str) -> str | None:
    """An upload id, from the upload's own work_id or from the work_id of a run started on it."""
    if storage.exists(_upload_path(storage, work_id)):
        return work_id
    job = gateway.find(API, work_id)
    return job.parent_id if job else None


def _quick_check(storage: Storage, path: str) -> str | None:
    """Reject what is certainly not a CSV before starting a job; the flow validates the rest."""
    if storage.size(path) == 0:
        return "告警文件不符合要求: the uploaded file is empty"
    with storage.open(path, "rb") as handle:
        head = handle.read(8192)
    if b"\x00" in head:
        return "告警文件不符合要求: the uploaded file is binary, not a CSV"
    try:
        head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multi-byte character cut at the end of the sample is fine
            try:
                head.decode("gb18030")
            except UnicodeDecodeError:
                return "告警文件不符合要求: the uploaded file is not UTF-8 or GB18030 text"
    return None


def _find_job(gateway: JobGateway, any_id: str) -> JobRun | None:
    canonical = _canonical(any_id)
    return gateway.find(API, canonical) if canonical else None


@router.post(
    "/get_resu_process",
    operation_id="traffic_get_resu_process",
    summary="Progress of a forecast, as NN%",
    response_model=ProgressAnswer,
    responses={200: {"links": PROGRESS_LINKS}},
    openapi_extra=WORK_ID_BODY,
)
async def get_resu_process(request: Request) -> JSONResponse:
    if request.method != "POST":
        return _ret(ProgressRet.WRONG_METHOD, process="0%", msg="请求方式错误，需要POST请求")
    try:
        body = await _params(request)
    except (BadBody, BodyTooLarge) as exc:
        return _ret(ProgressRet.FAILED, process="0%", msg=str(exc))
    gateway, work_id = get_gateway(), body.fields.get("work_id", "")
    # Pollers hammer this endpoint: answer from the gateway's memory when it can, off the loop otherwise.
    if (answer := _progress(gateway, work_id, blocking=False)) is not None:
        return answer
    return await run_in_threadpool(_progress, gateway, work_id)


def _progress(gateway: JobGateway, work_id: str, *, blocking: bool = True) -> JSONResponse | None:
    """The progress answer; with `blocking=False`, None whenever it would need the database, Prefect or
    storage."""
    if blocking:
        job = _find_job(gateway, work_id)
        if job is None:
            missing = f"不存在进度文件: no job has work_id {work_id!r}"
            return _ret(ProgressRet.FAILED, process="0%", msg=missing)
        try:
            status = gateway.status(job.flow_run_id)
        except JobNotFound:
            gone = "the job's flow run no longer exists; upload again"
            return _ret(ProgressRet.FAILED, process="0%", msg=gone)
    else:
        canonical = _canonical(work_id)
        job = gateway.known_job(API, canonical) if canonical else None
        status = gateway.peek_status(job.flow_run_id) if job else None
        if job is None or status is None:
            return None
    percent = math.floor(status.percent)
    if status.state is JobState.COMPLETED:
        ready = gateway.has_result(job.flow_run_id, FORECAST_FILE, cached_only=not blocking)
        if not ready and not blocking:
            return None
        return _ret(ProgressRet.OK, process="100%" if ready else "99%", work_id=job.legacy_id)
    if status.state in {JobState.FAILED, JobState.CRASHED, JobState.CANCELLED}:
        reason = status.message or status.state_name
        return _ret(ProgressRet.FAILED, process=f"{min(percent, 99)}%", msg=f"任务执行存在错误: {reason}")
    return _ret(ProgressRet.OK, process=f"{min(percent, 99)}%", work_id=job.legacy_id)


@router.post(
    "/get_download_resu",
    operation_id="traffic_get_download_resu",
    summary="Download the forecast CSV (or a ret code when it is not ready)",
    response_model=DownloadAnswer,
    responses={200: {"content": CSV_FILE}},
    openapi_extra=WORK_ID_BODY,
)
async def get_download_resu(request: Request) -> Response:
    if request.method != "POST":
        return _ret(DownloadRet.WRONG_METHOD, msg="请求方法错误，需要POST请求")
    try:
        body = await _params(request)
    except (BadBody, BodyTooLarge) as exc:
        return _ret(DownloadRet.BAD_WORK_ID, msg=str(exc))
    return await run_in_threadpool(_download, get_gateway(), body.fields.get("work_id", ""), FORECAST_FILE)


def _download(gateway: JobGateway, work_id: str, name: str) -> Response:
    job = _find_job(gateway, work_id)
    if job is None:
        return _ret(DownloadRet.BAD_WORK_ID, msg=f"workID错误: no job has work_id {work_id!r}")
    storage = get_storage()
    path = storage.run_path(job.flow_run_id, name)
    if gateway.status(job.flow_run_id).state is not JobState.COMPLETED or not storage.exists(path):
        return _ret(
            DownloadRet.BAD_WORK_ID, msg="workID错误: the forecast is not ready (poll get_resu_process)"
        )
    filename = f"{job.legacy_id}.csv" if name == FORECAST_FILE else f"{job.legacy_id}_bounds.csv"
    return _file_response(storage, path, filename)


def _file_response(storage: Storage, path: str, filename: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    local = storage.local_path(path)
    if local:
        return FileResponse(local, media_type="text/csv", filename=filename)
    return StreamingResponse(storage.iter_chunks(path), media_type="text/csv", headers=headers)


_FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": CSV_FILE, "description": "The CSV file."},
    403: {"model": FileError, "description": "An unsafe file name."},
    404: {"model": FileError, "description": "No such file, or the forecast is not ready."},
}


@router.get(
    "/static/upload/{filename}",
    operation_id="traffic_static_upload",
    response_class=Response,
    responses=_FILE_RESPONSES,
)
async def static_upload(filename: str) -> Response:
    return await run_in_threadpool(_static_upload, filename)


def _static_upload(filename: str) -> Response:
    try:
        name = safe_part(filename)
    except UnsafePathError:
        return JSONResponse({"ret": UploadRet.UNKNOWN, "msg": "invalid file name"}, status_code=403)
    work_id = _canonical(name.removesuffix(".csv"))
    storage = get_storage()
    if work_id is None or not storage.exists(_upload_path(storage, work_id)):
        return JSONResponse({"ret": UploadRet.UNKNOWN, "msg": f"no upload named {name}"}, status_code=404)
    return _file_response(storage, _upload_path(storage, work_id), f"{work_id}.csv")


@router.get(
    "/static/download/{filename}",
    operation_id="traffic_static_download",
    response_class=Response,
    responses=_FILE_RESPONSES,
)
async def static_download(filename: str) -> Response:
    stem = filename.removesuffix(".csv")
    name = FORECAST_FILE
    if stem.endswith("_bounds"):
        stem, name = stem.removesuffix("_bounds"), BOUNDS_FILE
    response = await run_in_threadpool(_download, get_gateway(), stem, name)
    if isinstance(response, JSONResponse):
        response.status_code = 404
    return response


for _path, _endpoint in (
    ("/upload_file", upload_file),
    ("/get_flow", get_flow),
    ("/get_resu_process", get_resu_process),
    ("/get_download_resu", get_download_resu),
):
    router.add_api_route(_path, _endpoint, methods=OTHER_METHODS, include_in_schema=False)
