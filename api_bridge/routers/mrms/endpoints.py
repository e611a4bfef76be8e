"""003 MRMS: projects, datasets, learning histories and models, under /mrms.

Every answer is HTTP 200 with the document's plain-text value: "1" (or a status, a project id, a uuid,
a JSON list or object) on success and "error" on any failure, as the legacy service answered. Parameters
come from the query string or a JSON, urlencoded or multipart body alike. A learning history is either
trained here (a Prefect "mrms_training" flow run, when its alg_id is in the estimator registry and the
client did not ask for an external worker) or by an external worker that reports through the update
endpoints; both write through storage.mrms.repository.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from api_bridge.errors import register_envelope
from api_bridge.gateway import JobGateway, JobNotFound, JobState, SubmitError, get_gateway
from api_bridge.requests import BadBody, BodyTooLarge, read_body, save_upload
from api_bridge.routers.mrms import openapi as api
from api_bridge.routers.mrms.codes import API, DATASET_FIELD, Reply
from api_bridge.routers.mrms.openapi import OK, json_answer, legacy_route, text_answer
from flowbridge.settings import get_settings
from storage.filesystems import UnsafePathError, get_storage, safe_part
from storage.mrms import repository as records
from storage.mrms.domain import (
    WORKER_IDX,
    LearnStatus,
    ModelingMode,
    ProjectStatus,
    Purpose,
    TimeType,
    Trainer,
)
from storage.mrms.repository import RecordError, first, parse_float, parse_time, require

router = APIRouter(prefix="/mrms", tags=["003 MRMS"])
log = logging.getLogger("flowbridge.mrms")
ANALYSIS_JOB = "mrms_analysis"
TRAINING_JOB = "mrms_training"
SMALL_BODY = 1024 * 1024
HIST_KEYS = ("hist_no", "learn_hist_no")  # the document uses both names for the same number
EXTERNAL_VALUES = {"y", "yes", "true", "1", "external"}
LOG_PAGE = 200


def _envelope(status: int, message: str) -> Response:
    """Framework errors on /mrms: the legacy "error" text; unknown routes and methods keep their status."""
    log.info("mrms framework error %d: %s", status, message)
    return PlainTextResponse(Reply.ERROR.value, status_code=status if status in {404, 405} else 200)


register_envelope("/mrms", _envelope)

Handler = Callable[[dict[str, str]], Any]


def _answer(value: Any) -> Response:
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
        _check_text(body.fields)
        return _answer(await run_in_threadpool(handler, body.fields))
    except RecordError as exc:
        return _error(endpoint, str(exc))


def _check_text(fields: dict[str, str], *more: str) -> None:
    """NUL cannot be stored in (nor compared with) a PostgreSQL text column: refuse it in any field name,
    value, or other client text (`more`, e.g. an upload's file name)."""
    if any("\x00" in text for pair in fields.items() for text in pair) or any("\x00" in t for t in more):
        raise RecordError("NUL characters are not allowed")


def _hist_no(fields: dict[str, str], *extra: str) -> str:
    return require(first(fields, (*extra, *HIST_KEYS)), "hist_no")


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
    status = records.parse_enum(ProjectStatus, require(fields.get("status"), "status"), "status")
    records.create_project(
        project_id=project_id,
        purpose=records.parse_enum(Purpose, fields.get("project_purpose_cd"), "project_purpose_cd"),
        dataset_id=records.optional(fields.get("dataset_id"), "dataset_id"),
        status=ProjectStatus.UPLOAD_WAITING if status is ProjectStatus.ANALYSIS_REQUESTED else status,
        start_time=parse_time(fields.get("start_time"), "start_time"),
        modeling_mode=records.parse_enum(ModelingMode, fields.get("modeling_mode") or "1", "modeling_mode"),
        early_stop=records.EarlyStop.parse(fields.get("early_stop_param")),
        tags=records.parse_tags(fields.get("tag")),
    )
    if status is ProjectStatus.ANALYSIS_REQUESTED:
        _request_analysis(get_gateway(), project_id)
    return Reply.OK


def _request_analysis(gateway: JobGateway, project_id: str) -> None:
    """Status 5: a new data_analysis_id and a Prefect analysis run that moves the project to 6, 7 or 8."""
    analysis_id = records.new_id()
    records.start_analysis(project_id, analysis_id)
    try:
        run_id = gateway.submit(
            ANALYSIS_JOB,
            {"project_id": project_id, "data_analysis_id": analysis_id},
            api=API,
            legacy_id=analysis_id,
            parent_id=project_id,
            tags=[f"project:{project_id}"],
            flow_run_name=f"analysis-{project_id}",
        )
    except (SubmitError, OSError) as exc:
        records.finish_analysis(
            project_id, analysis_id, ProjectStatus.ANALYSIS_ERROR, message=f"could not start: {exc}"
        )
        raise RecordError(f"analysis of {project_id!r} could not start: {exc}") from exc
    records.attach_analysis_run(project_id, analysis_id, str(run_id))


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
    status = records.parse_enum(ProjectStatus, fields.get("status"), "status")
    gateway = get_gateway()
    if status is ProjectStatus.ANALYSIS_REQUESTED:
        records.project_status(project_id)  # unknown project: error before anything starts
        _request_analysis(gateway, project_id)
        return Reply.OK
    records.set_project_status(project_id, status)
    if status is ProjectStatus.ANALYSIS_POD_DELETE:
        run_id = records.analysis_run_id(project_id)
        if run_id:
            with contextlib.suppress(JobNotFound):
                gateway.cancel(run_id, "analysis pod delete requested (status 9)")
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
    from tasks.mrms.training import REGISTRY, TrainingError, check_params, default_config

    hist_no = require(fields.get("learn_hist_no"), "learn_hist_no")
    project_id = require(fields.get("project_id"), "project_id")
    project = records.project_for_training(project_id)
    alg_id = records.optional(fields.get("alg_id"), "alg_id")
    external = (fields.get("external") or fields.get("trainer") or "").strip().lower() in EXTERNAL_VALUES
    trained_here = not external and alg_id in REGISTRY
    param_id = (fields.get("param_id") or "").strip() or None  # an id, or an inline JSON object
    params: dict[str, Any] | None = None
    if trained_here:
        param_id, params = _resolve_params(param_id, alg_id)
        try:
            check_params(alg_id, params, Purpose(project["purpose"]), default_config())  # type: ignore[arg-type]
        except TrainingError as exc:
            raise RecordError(str(exc)) from exc
    else:  # kept as given for the external worker: what its column holds
        param_id = records.optional(param_id, "param_id")
    records.create_learn_hist(
        learn_hist_no=hist_no,
        project_id=project_id,
        param_id=param_id,
        params=params,
        alg_anal_id=records.optional(fields.get("alg_anal_id"), "alg_anal_id"),
        alg_id=alg_id,
        dp_analysis_id=records.optional(fields.get("dp_analysis_id"), "dp_analysis_id"),
        status=records.parse_enum(LearnStatus, fields.get("learn_sttus_cd") or "5", "learn_sttus_cd"),
        start_time=parse_time(fields.get("start_time"), "start_time"),
        trainer=Trainer.FLOWBRIDGE if trained_here else Trainer.EXTERNAL,
    )
    if trained_here:
        try:
            run_id = get_gateway().submit(
                TRAINING_JOB,
                {"learn_hist_no": hist_no},
                api=API,
                legacy_id=hist_no,
                parent_id=project_id,
                tags=[f"project:{project_id}", f"learn_hist_no:{hist_no}"],
                flow_run_name=f"learn-{hist_no}",
                # this history's own key: Prefect must never hand back a run started for an earlier
                # history of the same number (a metadata DB reset while Prefect kept its runs)
                idempotency_key=f"{API}:{hist_no}:{records.new_id()}",
            )
        except (SubmitError, OSError) as exc:
            records.update_learn_status(hist_no, LearnStatus.ERROR, f"could not start training: {exc}")
            raise RecordError(f"training of {hist_no!r} could not start: {exc}") from exc
        records.attach_training_run(hist_no, str(run_id))
    return Reply.OK


def _resolve_params(param_id: str | None, alg_id: str | None) -> tuple[str | None, dict[str, Any]]:
    """param_id is a stored parameter set, or an inline JSON object (stored under a new id), or absent."""
    if param_id is None:
        return None, {}
    if param_id.startswith("{"):
        params = records.parse_json_object(param_id, "param_id")
        new_id = records.new_id()
        records.create_param_set(new_id, params, alg_id)
        return new_id, params
    params = records.find_param_set(param_id)
    if params is None:
        raise RecordError(f"no parameter set {param_id!r} (store it with /mrms/param_set)")
    return param_id, params


@legacy_route(
    router,
    "/get_sttus_cd",
    "POST",
    summary="A learning history's status code.",
    answer=text_answer(*(s.value for s in LearnStatus), description='The status code, or "error".'),
    fields=api.hist(),
)
async def get_sttus_cd(request: Request) -> Response:
    return await _serve(request, "POST", _learn_status)


def _learn_status(fields: dict[str, str]) -> str:
    hist_no = _hist_no(fields)
    _close_lost_runs(records.running_runs(learn_hist_no=hist_no))
    return records.learn_status(hist_no)


def _close_lost_runs(running: list[tuple[str, str]]) -> None:
    """Histories whose training run ended without the flow's own bookkeeping (its process was killed, or
    the zombie automation crashed it) would stay RUNNING forever: read the run's state from Prefect, the
    state of record, and close them as the flow's crash hook would have."""
    gateway = get_gateway()
    for hist_no, run_id in running:
        try:
            run = gateway.status(run_id)
        except JobNotFound:
            records.close_lost_run(hist_no, "deleted", "its flow run no longer exists", datetime.now(UTC))
            continue
        except Exception as exc:  # Prefect unreachable: answer the record as it is, check next time
            log.warning("could not read the training run of %s: %s", hist_no, type(exc).__name__)
            continue
        if run.state.is_final and run.state is not JobState.COMPLETED:
            records.close_lost_run(hist_no, run.state_name, run.message, run.ended or datetime.now(UTC))


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
    status = records.parse_enum(
        LearnStatus, require(first(fields, ("sttus_cd", "learn_sttus_cd")), "sttus_cd"), "sttus_cd"
    )
    task_idx = records.optional(fields.get("task_idx"), "task_idx", limit=32)
    records.update_learn_status(_hist_no(fields), status, fields.get("message"), task_idx)
    return Reply.OK


@legacy_route(
    router, "/eps_update", "POST", summary="Report events per second.", answer=OK, fields=api.EPS_UPDATE
)
async def eps_update(request: Request) -> Response:
    return await _serve(request, "POST", _eps_update)


def _eps_update(fields: dict[str, str]) -> str:
    eps = parse_float(require(fields.get("eps"), "eps"), "eps")
    records.update_eps(_hist_no(fields), eps)
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
    records.record_result(_hist_no(fields), result)
    return Reply.OK


@legacy_route(
    router, "/time_update", "POST", summary="Report a start or end time.", answer=OK, fields=api.TIME_UPDATE
)
async def time_update(request: Request) -> Response:
    return await _serve(request, "POST", _time_update)


def _time_update(fields: dict[str, str]) -> str:
    kind = records.parse_enum(TimeType, (fields.get("type") or "").strip().lower(), "type")
    when = parse_time(require(fields.get("curr_time"), "curr_time"), "curr_time")
    records.update_time(_hist_no(fields), kind, when or datetime.now(UTC))
    return Reply.OK


@legacy_route(
    router, "/model_resources", "POST", summary="Report CPU use.", answer=OK, fields=api.MODEL_RESOURCES
)
async def model_resources(request: Request) -> Response:
    return await _serve(request, "POST", _model_resources)


def _model_resources(fields: dict[str, str]) -> str:
    """cpu is {"percent": ...} in a JSON body; form clients may send cpu=<number> or cpu_percent."""
    raw = require(first(fields, ("cpu", "cpu_percent", "percent")), "cpu")
    if raw.strip().startswith("{"):
        raw = str(records.parse_json_object(raw, "cpu").get("percent"))
    records.record_resources(_hist_no(fields), parse_float(raw, "cpu.percent"))
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
    """{"0": log text} of flowbridge's single training worker; {} for a history trained elsewhere."""
    hist = records.learn_hist(_hist_no(fields, "id"))
    tail = (fields.get("tail") or "").strip().lower() == "true"
    if not hist["flow_run_id"]:
        return {}
    gateway = get_gateway()
    try:
        if tail:
            lines = get_settings().mrms_log_tail_lines
            total = gateway.count_logs(hist["flow_run_id"])
            found = gateway.logs(hist["flow_run_id"], offset=max(0, total - lines), limit=lines)
        else:
            found, offset = [], 0
            while batch := gateway.logs(hist["flow_run_id"], offset=offset, limit=LOG_PAGE):
                found += batch
                offset += len(batch)
                if len(batch) < LOG_PAGE:
                    break
    except JobNotFound as exc:
        raise RecordError(f"the training run of {hist['learn_hist_no']!r} no longer exists") from exc
    text = "\n".join(f"{line.timestamp:%Y-%m-%d %H:%M:%S} {line.level} {line.message}" for line in found)
    return {WORKER_IDX: text}


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
    return await _serve(
        request, "GET", lambda f: records.hist_statuses(require(f.get("project_id"), "project_id"))
    )


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
    hist_no = (first(fields, HIST_KEYS) or "").strip() or None
    _close_lost_runs(records.running_runs(project_id=project_id, learn_hist_no=hist_no))
    return records.models_info(project_id, hist_no)


@legacy_route(
    router,
    "/get_project_id",
    "GET",
    summary="The project of a learning history.",
    answer=text_answer(description='The project id, or "error".'),
    fields=api.hist(),
)
async def get_project_id(request: Request) -> Response:
    return await _serve(request, "GET", lambda f: records.project_of_hist(_hist_no(f)))


# --- models -----------------------------------------------------------------------------------------
@legacy_route(
    router, "/model_alias_update", "POST", summary="Set a model's alias.", answer=OK, fields=api.ALIAS_UPDATE
)
async def model_alias_update(request: Request) -> Response:
    return await _serve(request, "POST", _model_alias_update)


def _model_alias_update(fields: dict[str, str]) -> str:
    if "model_alias" not in fields:
        raise RecordError("model_alias is required")
    records.set_alias(_hist_no(fields), fields["model_alias"].strip())
    return Reply.OK


@legacy_route(
    router, "/bookmark_update", "GET", summary="Bookmark a model or not.", answer=OK, fields=api.BOOKMARK
)
async def bookmark_update(request: Request) -> Response:
    return await _serve(request, "GET", _bookmark_update)


def _bookmark_update(fields: dict[str, str]) -> str:
    flag = records.parse_yes_no(first(fields, ("bookmarkYN", "bookmark_yn", "bookmarkyn")), "bookmarkYN")
    records.set_bookmark(_hist_no(fields), flag)
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
        lambda f: records.select_model(require(f.get("project_id"), "project_id"), _hist_no(f)) or Reply.OK,
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
    hist_no = _hist_no(fields)
    relpath, sha256 = records.model_file(hist_no)
    storage = get_storage()
    path = storage.path(relpath)
    if not storage.exists(path):
        raise RecordError(f"the model file of {hist_no!r} is missing from storage")
    filename = f"{safe_filename(hist_no)}.skops"
    headers = {"X-Model-Format": "skops", "X-Model-SHA256": sha256}
    local = storage.local_path(path)
    if local:
        return FileResponse(local, media_type="application/octet-stream", filename=filename, headers=headers)
    headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    chunks = storage.iter_chunks(path)
    return StreamingResponse(chunks, media_type="application/octet-stream", headers=headers)


def safe_filename(name: str) -> str:
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
        return _answer(await run_in_threadpool(_store_dataset, body))
    except (RecordError, UnsafePathError) as exc:
        return _error("/mrms/dataset_upload", str(exc))
    finally:
        await body.close()


def _store_dataset(body: Any) -> str:
    from tasks.mrms.profile import DatasetError, format_of, read_columns

    upload = body.files.get(DATASET_FIELD)
    if upload is None:
        raise RecordError(f"the file field must be named {DATASET_FIELD!r}")
    fields = body.fields
    _check_text(fields, upload.filename or "")
    target = require(fields.get("target"), "target")
    time_column = records.optional(fields.get("time_column"), "time_column", limit=255)
    dataset_id = safe_part(require(fields.get("dataset_id") or records.new_id(), "dataset_id"))
    if records.dataset_exists(dataset_id):
        raise RecordError(f"dataset {dataset_id!r} already exists")
    storage = get_storage()
    try:
        file_format = format_of(upload.filename or "", (fields.get("format") or "").strip() or None)
        filename = f"data.{file_format}"
        path = storage.upload_path(API, dataset_id, filename)
        size = save_upload(upload, storage, path)
        columns = read_columns(storage, path, file_format)
    except DatasetError as exc:
        storage.delete(storage.upload_dir(API, dataset_id))
        raise RecordError(str(exc)) from exc
    missing = [c for c in (target, time_column) if c and c not in columns]
    if missing:
        storage.delete(storage.upload_dir(API, dataset_id))
        raise RecordError(f"the file has no column(s) {missing}")
    records.create_dataset(
        dataset_id=dataset_id,
        path=f"uploads/{API}/{dataset_id}/{filename}",
        file_format=file_format,
        original_name=(upload.filename or filename)[:255],
        target=target,
        time_column=time_column,
        size_bytes=size,
        columns=columns,
    )
    return dataset_id


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
    from tasks.mrms.training import REGISTRY, TrainingError, build_estimator, default_config, split_params

    params = records.parse_json_object(fields.get("params"), "params")
    alg_id = records.optional(fields.get("alg_id"), "alg_id")
    if alg_id in REGISTRY:
        try:
            _, hyper = split_params(params, default_config())
            build_estimator(REGISTRY[alg_id], hyper)  # type: ignore[index]
        except TrainingError as exc:
            raise RecordError(str(exc)) from exc
    param_id = require(fields.get("param_id") or records.new_id(), "param_id")
    records.create_param_set(param_id, params, alg_id)
    return param_id
