"""000 traffic-flow prediction: upload a CSV, start a forecast by work_id, poll "NN%", download.

Every answer is HTTP 200 with the document's `ret` code (plus a `msg` naming the problem), as the old
Flask service did; a GET on a POST-only endpoint answers that endpoint's "wrong method" code. The
upload's work_id and the run's work_id are both accepted everywhere, with or without dashes.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api_bridge.errors import Envelope, register_envelope
from api_bridge.gateway import JobGateway, get_gateway
from api_bridge.requests import BadBody, Body, BodyTooLarge, canonical_uuid, read_body, save_upload
from api_bridge.responses import stored_file
from api_bridge.routers.traffic import service
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
from api_bridge.run_names import run_name
from flowbridge.settings import get_settings
from storage.filesystems import UnsafePathError, get_storage, safe_part

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
        size = await run_in_threadpool(save_upload, upload, storage, service.upload_path(storage, work_id))
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
    work_id = canonical_uuid(body.fields.get("work_id", ""))
    storage = get_storage()
    if work_id is None:
        return _ret(StartRet.BAD_WORK_ID, msg="work_id is missing or is not a UUID")
    upload_id = await run_in_threadpool(service.resolve_upload, get_gateway(), storage, work_id)
    if upload_id is None:
        return _ret(StartRet.BAD_WORK_ID, msg=f"no uploaded file has work_id {work_id}")
    problem = await run_in_threadpool(service.quick_check, storage, upload_id)
    if problem:
        return _ret(StartRet.BAD_FILE, msg=problem)
    from flows.traffic.forecast import TrafficForecastParams

    options = {
        k: body.fields[k] for k in ("horizon", "interval_level", "holiday_country") if body.fields.get(k)
    }
    try:
        params = TrafficForecastParams(input_path=service.upload_input_path(upload_id), **options)
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
            flow_run_name=run_name("traffic", run_work_id),
        )
    except Exception as exc:  # the legacy contract has a code for exactly this
        log.exception("get_flow %s: submission failed", upload_id)
        return _ret(StartRet.SERVER_ERROR, msg=f"服务器异常: could not start the job ({type(exc).__name__})")
    return _ret(StartRet.OK, work_id=run_work_id, download_url=f"static/download/{run_work_id}.csv")


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
    progress = service.cached_progress(gateway, work_id)
    if progress is None:
        progress = await run_in_threadpool(service.progress, gateway, work_id)
    if progress.problem is not None:
        return _ret(ProgressRet.FAILED, process=f"{progress.percent}%", msg=progress.problem)
    return _ret(ProgressRet.OK, process=f"{progress.percent}%", work_id=progress.work_id)


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
    job = service.find_job(gateway, work_id)
    if job is None:
        return _ret(DownloadRet.BAD_WORK_ID, msg=f"workID错误: no job has work_id {work_id!r}")
    storage = get_storage()
    path = service.finished_result(gateway, storage, job, name)
    if path is None:
        return _ret(
            DownloadRet.BAD_WORK_ID, msg="workID错误: the forecast is not ready (poll get_resu_process)"
        )
    filename = f"{job.legacy_id}.csv" if name == FORECAST_FILE else f"{job.legacy_id}_bounds.csv"
    return stored_file(storage, path, filename, "text/csv")


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
    work_id = canonical_uuid(name.removesuffix(".csv"))
    storage = get_storage()
    if work_id is None or not storage.exists(service.upload_path(storage, work_id)):
        return JSONResponse({"ret": UploadRet.UNKNOWN, "msg": f"no upload named {name}"}, status_code=404)
    path = service.upload_path(storage, work_id)
    return stored_file(storage, path, service.upload_name(work_id), "text/csv")


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
