"""003 MRMS: projects, datasets, learning histories and models, under /mrms.

Every answer is HTTP 200 with the document's plain-text value: "1" (or a status, a project id, a uuid,
a JSON list or object) on success and "error" on any failure, as the legacy service answered. Parameters
come from the query string or a JSON, urlencoded or multipart body alike. A learning history is either
trained here (a Prefect "mrms_training" flow run, when its alg_id is in the estimator registry and the
client did not ask for an external worker) or by an external worker that reports through the update
endpoints; both write through storage.mrms.repository.

Each endpoint parses its fields (fields.py), calls one function of storage.mrms.repository or, when the
gateway or storage is involved too, of service.py, and translates the answer into the legacy reply.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from api_bridge.errors import register_envelope
from api_bridge.gateway import get_gateway
from api_bridge.requests import BadBody, Body, BodyTooLarge, read_body
from api_bridge.responses import file_or_stream
from api_bridge.routers.mrms import openapi as api
from api_bridge.routers.mrms import service
from api_bridge.routers.mrms.codes import DATASET_FIELD, Reply
from api_bridge.routers.mrms.fields import (
    check_text,
    cpu_percent,
    first,
    hist_no,
    is_external,
    optional,
    optional_hist_no,
    parse_tags,
    require,
)
from api_bridge.routers.mrms.openapi import OK, json_answer, legacy_route, text_answer
from flowbridge.settings import get_settings
from storage.filesystems import UnsafePathError
from storage.mrms import repository as records
from storage.mrms.domain import LearnStatus, ModelingMode, ProjectStatus, Purpose, TimeType
from storage.mrms.repository import EarlyStop, NewProject, RecordError, parse_enum, parse_float, parse_time

router = APIRouter(prefix="/mrms", tags=["003 MRMS"])
log = logging.getLogger("flowbridge.mrms")
SMALL_BODY = 1024 * 1024


def _envelope(status: int, message: str) -> Response:
    """Framework errors on /mrms: the legacy "error" text; unknown routes and methods keep their status."""
    log.info("mrms framework error %d: %s", status, message)
    return PlainTextResponse(Reply.ERROR.value, status_code=status if status in {404, 405} else 200)


register_envelope("/mrms", _envelope)

Handler = Callable[[dict[str, str]], Any]


def _legacy_response(value: Any) -> Response:
    if isinstance(value, Response):
        return value
    if isinstance(value, list | dict):
        return JSONResponse(value)
    return PlainTextResponse(str(value))


def _error(endpoint: str, reason: str) -> Response:
    log.info("mrms %s: error: %s", endpoint, reason)
    return PlainTextResponse(Reply.ERROR.value)


async def _serve(request: Request, method: str, handler: Handler) -> Response:
    endpoint = request.url.path
    if request.method != method:
        return _error(endpoint, f"{request.method} instead of {method}")
    try:
        body = await read_body(request, max_bytes=SMALL_BODY, max_files=0)
    except (BadBody, BodyTooLarge, ValueError, RecursionError) as exc:  # also JSON too deep or too long
        return _error(endpoint, f"{type(exc).__name__}: {exc}"[:200])
    try:
        check_text(body.fields)
        return _legacy_response(await run_in_threadpool(handler, body.fields))
    except RecordError as exc:
        return _error(endpoint, str(exc))


# --- projects ---------------------------------------------------------------------------------------
@legacy_route(
    router,
    "/project_create",
    "POST",
    summary="Create a project (status 5 also starts its analysis).",
    answer=OK,
    fields=api.PROJECT_CREATE,
)
async def project_create(request: Request) -> Response:
    return await _serve(request, "POST", _project_create)


def _project_create(fields: dict[str, str]) -> str:
    project_id = require(fields.get("project_id"), "project_id")
    status = parse_enum(ProjectStatus, require(fields.get("status"), "status"), "status")
    project = NewProject(
        project_id=project_id,
        purpose=parse_enum(Purpose, fields.get("project_purpose_cd"), "project_purpose_cd"),
        dataset_id=optional(fields.get("dataset_id"), "dataset_id"),
        status=status,
        start_time=parse_time(fields.get("start_time"), "start_time"),
        modeling_mode=parse_enum(ModelingMode, fields.get("modeling_mode") or "1", "modeling_mode"),
        early_stop=EarlyStop.parse(fields.get("early_stop_param")),
        tags=parse_tags(fields.get("tag")),
    )
    service.create_project(get_gateway(), project)
    return Reply.OK


@legacy_route(
    router,
    "/get_proj_sttus_cd",
    "GET",
    summary="A project's status code.",
    answer=text_answer(*(s.value for s in ProjectStatus), description='The status code, or "error".'),
    fields=[api.PROJECT_ID],
)
async def get_proj_sttus_cd(request: Request) -> Response:
    return await _serve(
        request, "GET", lambda f: records.project_status(require(f.get("project_id"), "project_id"))
    )


@legacy_route(
    router,
    "/get_projects_info",
    "GET",
    summary="Projects (all, or one).",
    answer=json_answer({"type": "array", "items": api.PROJECT}, "The projects."),
    fields=[api.Field("project_id", "Only this project.", False, api.OPTIONAL_ID)],
)
async def get_projects_info(request: Request) -> Response:
    return await _serve(request, "GET", lambda f: records.project_info((f.get("project_id") or "").strip()))


@legacy_route(
    router,
    "/update_projects_status",
    "POST",
    summary="Set a project's status (5 starts an analysis, 9 cancels it).",
    answer=OK,
    fields=[api.PROJECT_ID, api.STATUS_FIELD],
)
async def update_projects_status(request: Request) -> Response:
    return await _serve(request, "POST", _update_projects_status)


def _update_projects_status(fields: dict[str, str]) -> str:
    project_id = require(fields.get("project_id"), "project_id")
    status = parse_enum(ProjectStatus, fields.get("status"), "status")
    service.set_project_status(get_gateway(), project_id, status)
    return Reply.OK


# --- learning histories -----------------------------------------------------------------------------
@legacy_route(
    router,
    "/insert_learn_hist",
    "POST",
    summary="Create a learning history (and train it here when its algorithm is known).",
    answer=OK,
    fields=api.INSERT_LEARN_HIST,
)
async def insert_learn_hist(request: Request) -> Response:
    return await _serve(request, "POST", _insert_learn_hist)


def _insert_learn_hist(fields: dict[str, str]) -> str:
    new = service.NewLearnHist(
        learn_hist_no=require(fields.get("learn_hist_no"), "learn_hist_no"),
        project_id=require(fields.get("project_id"), "project_id"),
        alg_id=optional(fields.get("alg_id"), "alg_id"),
        param_id=(fields.get("param_id") or "").strip() or None,  # an id, or an inline JSON object
        alg_anal_id=optional(fields.get("alg_anal_id"), "alg_anal_id"),
        dp_analysis_id=optional(fields.get("dp_analysis_id"), "dp_analysis_id"),
        status=parse_enum(LearnStatus, fields.get("learn_sttus_cd") or "5", "learn_sttus_cd"),
        start_time=parse_time(fields.get("start_time"), "start_time"),
        external=is_external(fields),
    )
    service.insert_learn_hist(get_gateway(), new)
    return Reply.OK


@legacy_route(
    router,
    "/get_sttus_cd",
    "POST",
    summary="A learning history's status code.",
    answer=text_answer(*(s.value for s in LearnStatus), description='The status code, or "error".'),
    fields=api.hist(),
)
async def get_sttus_cd(request: Request) -> Response:
    return await _serve(request, "POST", lambda f: service.learn_status(get_gateway(), hist_no(f)))


@legacy_route(
    router,
    "/status_update/learn",
    "POST",
    summary="Report a learning history's status.",
    answer=OK,
    fields=api.STATUS_UPDATE,
)
async def status_update_learn(request: Request) -> Response:
    return await _serve(request, "POST", _status_update)


def _status_update(fields: dict[str, str]) -> str:
    status = parse_enum(
        LearnStatus, require(first(fields, ("sttus_cd", "learn_sttus_cd")), "sttus_cd"), "sttus_cd"
    )
    task_idx = optional(fields.get("task_idx"), "task_idx", limit=32)
    records.update_learn_status(hist_no(fields), status, fields.get("message"), task_idx)
    return Reply.OK


@legacy_route(
    router, "/eps_update", "POST", summary="Report events per second.", answer=OK, fields=api.EPS_UPDATE
)
async def eps_update(request: Request) -> Response:
    return await _serve(request, "POST", _eps_update)


def _eps_update(fields: dict[str, str]) -> str:
    eps = parse_float(require(fields.get("eps"), "eps"), "eps")
    records.update_eps(hist_no(fields), eps)
    return Reply.OK


@legacy_route(
    router,
    "/learn_result_update",
    "POST",
    summary="Report one step's results.",
    answer=OK,
    fields=api.RESULT_UPDATE,
)
async def learn_result_update(request: Request) -> Response:
    return await _serve(request, "POST", _learn_result_update)


def _learn_result_update(fields: dict[str, str]) -> str:
    result = records.parse_result(fields.get("result"))
    records.record_result(hist_no(fields), result)
    return Reply.OK


@legacy_route(
    router, "/time_update", "POST", summary="Report a start or end time.", answer=OK, fields=api.TIME_UPDATE
)
async def time_update(request: Request) -> Response:
    return await _serve(request, "POST", _time_update)


def _time_update(fields: dict[str, str]) -> str:
    kind = parse_enum(TimeType, (fields.get("type") or "").strip().lower(), "type")
    when = parse_time(require(fields.get("curr_time"), "curr_time"), "curr_time")
    records.update_time(hist_no(fields), kind, when or datetime.now(UTC))
    return Reply.OK


@legacy_route(
    router, "/model_resources", "POST", summary="Report CPU use.", answer=OK, fields=api.MODEL_RESOURCES
)
async def model_resources(request: Request) -> Response:
    return await _serve(request, "POST", _model_resources)


def _model_resources(fields: dict[str, str]) -> str:
    percent = cpu_percent(fields)
    records.record_resources(hist_no(fields), percent)
    return Reply.OK


@legacy_route(
    router,
    "/get_learn_logs",
    "GET",
    summary="A learning history's training logs.",
    answer=json_answer(
        {"type": "object", "additionalProperties": {"type": "string"}}, "{worker index: log text}."
    ),
    fields=api.LEARN_LOGS,
)
async def get_learn_logs(request: Request) -> Response:
    return await _serve(request, "GET", _learn_logs)


def _learn_logs(fields: dict[str, str]) -> dict[str, str]:
    tail = (fields.get("tail") or "").strip().lower() == "true"
    return service.learn_logs(get_gateway(), hist_no(fields, "id"), tail=tail)


@legacy_route(router, "/get_uuid", "GET", summary="A fresh uuid.", answer=text_answer(description="A uuid."))
async def get_uuid(request: Request) -> Response:
    return await _serve(request, "GET", lambda _f: records.new_id())


@legacy_route(
    router,
    "/get_histno_status",
    "GET",
    summary="Status of every history of a project.",
    answer=json_answer({"type": "array", "items": api.HIST_STATUS}, "The histories."),
    fields=[api.PROJECT_ID],
)
async def get_histno_status(request: Request) -> Response:
    return await _serve(request, "GET", _hist_statuses)


def _hist_statuses(fields: dict[str, str]) -> Any:
    return service.hist_statuses(get_gateway(), require(fields.get("project_id"), "project_id"))


@legacy_route(
    router,
    "/get_models_info",
    "GET",
    summary="Models (histories) of a project, or one.",
    answer=json_answer({"type": "array", "items": api.MODEL}, "The models."),
    fields=api.MODELS_INFO,
)
async def get_models_info(request: Request) -> Response:
    return await _serve(request, "GET", _models_info)


def _models_info(fields: dict[str, str]) -> Any:
    project_id = require(fields.get("project_id"), "project_id")
    return service.models_info(get_gateway(), project_id, optional_hist_no(fields))


@legacy_route(
    router,
    "/get_project_id",
    "GET",
    summary="The project of a learning history.",
    answer=text_answer(description='The project id, or "error".'),
    fields=api.hist(),
)
async def get_project_id(request: Request) -> Response:
    return await _serve(request, "GET", lambda f: records.project_of_hist(hist_no(f)))


# --- models -----------------------------------------------------------------------------------------
@legacy_route(
    router, "/model_alias_update", "POST", summary="Set a model's alias.", answer=OK, fields=api.ALIAS_UPDATE
)
async def model_alias_update(request: Request) -> Response:
    return await _serve(request, "POST", _model_alias_update)


def _model_alias_update(fields: dict[str, str]) -> str:
    if "model_alias" not in fields:
        raise RecordError("model_alias is required")
    records.set_alias(hist_no(fields), fields["model_alias"].strip())
    return Reply.OK


@legacy_route(
    router, "/bookmark_update", "GET", summary="Bookmark a model or not.", answer=OK, fields=api.BOOKMARK
)
async def bookmark_update(request: Request) -> Response:
    return await _serve(request, "GET", _bookmark_update)


def _bookmark_update(fields: dict[str, str]) -> str:
    flag = records.parse_yes_no(first(fields, ("bookmarkYN", "bookmark_yn", "bookmarkyn")), "bookmarkYN")
    records.set_bookmark(hist_no(fields), flag)
    return Reply.OK


@legacy_route(
    router,
    "/update_model_select",
    "GET",
    summary="Select the project's one model.",
    answer=OK,
    fields=[api.PROJECT_ID, *api.hist()],
)
async def update_model_select(request: Request) -> Response:
    return await _serve(
        request,
        "GET",
        lambda f: records.select_model(require(f.get("project_id"), "project_id"), hist_no(f)) or Reply.OK,
    )


@legacy_route(
    router,
    "/model_download",
    "GET",
    summary="Download a trained model (skops).",
    answer=api.DOWNLOAD,
    fields=api.hist(),
)
async def model_download(request: Request) -> Response:
    return await _serve(request, "GET", _model_download)


def _model_download(fields: dict[str, str]) -> Response:
    """The skops file of Pipeline(preprocessing, estimator); X-Model-SHA256 lets a client verify it."""
    number = hist_no(fields)
    model = service.model_file(number)
    filename = f"{safe_filename(number)}.skops"
    headers = {"X-Model-Format": "skops", "X-Model-SHA256": model.sha256}
    return file_or_stream(
        model.local, lambda: model.chunks or iter(()), filename, "application/octet-stream", headers=headers
    )


def safe_filename(name: str) -> str:
    """The download's file name: a client's history number reduced to what every browser keeps."""
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)
    return cleaned.strip(".") or "model"


# --- flowbridge extensions: datasets and parameter sets ----------------------------------------------
@legacy_route(
    router,
    "/dataset_upload",
    "POST",
    summary="Upload a dataset (flowbridge extension).",
    answer=text_answer(description='The dataset_id, or "error".'),
    fields=api.DATASET_UPLOAD,
    multipart_only=True,
)
async def dataset_upload(request: Request) -> Response:
    """multipart: file (CSV or Parquet), target (column to predict), optional dataset_id, time_column,
    format. Answers the dataset_id that project_create takes."""
    if request.method != "POST":
        return _error("/mrms/dataset_upload", "POST required")
    limit = get_settings().mrms_max_upload_bytes
    try:
        body = await read_body(request, max_bytes=limit, max_files=1)
    except (BadBody, BodyTooLarge, ValueError, RecursionError) as exc:
        return _error("/mrms/dataset_upload", f"{type(exc).__name__}: {exc}"[:200])
    try:
        return _legacy_response(await run_in_threadpool(_store_dataset, body))
    except (RecordError, UnsafePathError) as exc:
        return _error("/mrms/dataset_upload", str(exc))
    finally:
        await body.close()


def _store_dataset(body: Body) -> str:
    upload = body.files.get(DATASET_FIELD)
    if upload is None:
        raise RecordError(f"the file field must be named {DATASET_FIELD!r}")
    fields = body.fields
    check_text(fields, upload.filename or "")
    new = service.NewDataset(
        target=require(fields.get("target"), "target"),
        time_column=optional(fields.get("time_column"), "time_column", limit=255),
        dataset_id=_given_id(fields, "dataset_id"),
        file_format=(fields.get("format") or "").strip() or None,
    )
    return service.store_dataset(upload, new)


@legacy_route(
    router,
    "/param_set",
    "POST",
    summary="Store a parameter set (flowbridge extension).",
    answer=text_answer(description='The param_id, or "error".'),
    fields=api.PARAM_SET,
)
async def param_set(request: Request) -> Response:
    """{"params": {...hyperparameters and training controls}, "alg_id"?, "param_id"?} → the param_id."""
    return await _serve(request, "POST", _param_set)


def _param_set(fields: dict[str, str]) -> str:
    params = records.parse_json_object(fields.get("params"), "params")
    alg_id = optional(fields.get("alg_id"), "alg_id")
    return service.store_param_set(_given_id(fields, "param_id"), params, alg_id)


def _given_id(fields: dict[str, str], name: str) -> str | None:
    """A client's own id for a new record, or None for a fresh uuid; blank but present is an error."""
    return require(fields[name], name) if fields.get(name) else None
