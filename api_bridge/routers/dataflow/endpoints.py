"""004 DataFlow: dataflow records, execution on Prefect, logs, lineage and script generation.

Every answer is the {"code","message","data"} envelope with the HTTP status equal to `code` (200, 400,
404, 409, 500). Records are in the metadata DB and relations in the graph store
(storage/dataflow/repository.py, storage/dataflow/graph.py); executions are Prefect flow runs of the
"dataflow_run" job type.

Runs are found by the record's run key (tag `dataflow-run:<run_key>`), never by its id alone: the key
dies with the record, so a record that gets a deleted one's id never sees its runs. A child run by its
parent (subflow `dataflow-child`) carries its own key too, so it counts as the child's execution.

One execution per dataflow at a time, enforced by Prefect: the newest run carrying the key is read back;
when it is not final the answer is 409. Otherwise the run is created with the idempotency key
`<key tag>:after:<newest run id or none>`, so bridges racing on the same dataflow all get the same flow
run back from Prefect's unique constraint, and only the bridge whose nonce parameter it holds answers 200.

Every id in a path or body is checked against what the id columns hold (storage/dataflow/repository.py): an
unknown or impossible id answers 404 (path) or 400 (body), never reaches the driver.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api_bridge.errors import register_envelope
from api_bridge.gateway import JobGateway, JobState, JobStatus, get_gateway
from api_bridge.routers.dataflow import schemas as doc
from api_bridge.routers.dataflow.codes import (
    API,
    DEFAULT_LINEAGE_DEPTH,
    DEFAULT_LOG_PAGE_SIZE,
    DEFAULT_PAGE_SIZE,
    JOB_TYPE,
    MAX_LINEAGE_DEPTH,
    MAX_LOG_PAGE_SIZE,
    MAX_PAGE,
    MAX_PAGE_SIZE,
    PREFIX,
    SCRIPT_FORMAT,
    Code,
    DataflowStatus,
    Msg,
    RunStatus,
)
from storage.dataflow import repository as dataflows
from storage.dataflow.graph import Direction, get_graph
from storage.dataflow.models import DataFlow
from storage.dataflow.repository import DataflowInputError, DataflowNotFound
from tasks.dataflow.config import lookup_tag, run_tags, valid_cron
from tasks.dataflow.script_generation import ScriptGenerationError, get_provider

router = APIRouter(prefix=PREFIX, tags=["004 DataFlow"])
log = logging.getLogger("flowbridge.dataflow")
MAX_BODY = 1024 * 1024
TEXT_LIMITS = {"name": 255, "created_by": 128}  # the columns' lengths: PostgreSQL refuses longer text
_FAILURE_PREFIX = "Flow run encountered an exception: "


def envelope(code: int, message: str, data: Any = None) -> JSONResponse:
    return JSONResponse({"code": int(code), "message": message, "data": data}, status_code=int(code))


def _error_envelope(status: int, message: str) -> Response:
    return envelope(status, message, None)


register_envelope(PREFIX, _error_envelope)


class BadInput(ValueError):
    """A client mistake found while translating the request."""


async def _json(request: Request, *, required: bool = True) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise BadInput(Msg.BAD_PARAM.format(problem=f"request body larger than {MAX_BODY} bytes"))
    if not raw.strip():
        if required:
            raise BadInput(Msg.BAD_PARAM.format(problem="the request body must be a JSON object"))
        return {}
    try:
        body = strict_json(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        raise BadInput(Msg.BAD_PARAM.format(problem=f"body is not valid JSON ({exc})")) from None
    if not isinstance(body, dict):
        raise BadInput(Msg.BAD_PARAM.format(problem="the request body must be a JSON object"))
    return body  # fields the API does not use are ignored, whatever they hold


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range for a number")
    return value


def strict_json(raw: bytes | str) -> Any:
    """JSON as RFC 8259 has it: no NaN/Infinity, no number that overflows a double (stored or sent on,
    they would make invalid JSON for the database or Prefect)."""
    return json.loads(raw, parse_constant=_no_constant, parse_float=_finite)


def _unstorable(value: Any, where: str, *, strict: bool = True) -> str | None:
    """Why `value` cannot be stored or sent on, if it cannot: a lone surrogate in any string or key (not
    encodable as UTF-8, so no answer could echo it); with `strict`, also a NUL character (PostgreSQL text
    and jsonb refuse it) or a number beyond 64-bit integers (Prefect's parameters hold no more). A stored
    config (a PostgreSQL json column, which keeps the text) may hold both."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        # a float as large comes back from Prefect's jsonb as an integer of as many digits
        if strict and not -(2**63) <= value < 2**63:
            return f"{where}: {value} is out of the 64-bit integer range"
        return None
    if isinstance(value, str):
        if strict and "\x00" in value:
            return f"{where} contains a NUL character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{where} is not valid Unicode text (lone surrogate)"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _unstorable(key, where, strict=strict) or _unstorable(
                item, f"{where}.{key}", strict=strict
            )
            if problem:
                return problem
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problem = _unstorable(item, f"{where}[{index}]", strict=strict)
            if problem:
                return problem
    return None


def _int(value: Any, name: str, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(str(value))
    except ValueError:
        raise BadInput(Msg.BAD_PARAM.format(problem=f"{name} must be an integer, got {value!r}")) from None
    if not low <= number <= high:
        raise BadInput(Msg.BAD_PARAM.format(problem=f"{name} must be between {low} and {high}, got {number}"))
    return number


def _pagination(page: int, page_size: int, total: int) -> dict[str, int]:
    return {"page": page, "page_size": page_size, "total": total, "total_pages": math.ceil(total / page_size)}


def _text(body: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise BadInput(Msg.MISSING_FIELD.format(field=name))
        return None
    if not isinstance(value, str):
        raise BadInput(Msg.BAD_PARAM.format(problem=f"{name} must be a string"))
    limit = TEXT_LIMITS.get(name)
    if limit is not None and len(value.strip()) > limit:
        raise BadInput(Msg.BAD_PARAM.format(problem=f"{name} is longer than {limit} characters"))
    problem = _unstorable(value, name)
    if problem:
        raise BadInput(Msg.BAD_PARAM.format(problem=problem))
    return value.strip()


def _status(body: dict[str, Any]) -> str | None:
    value = body.get("status")
    if value is None:
        return None
    if not isinstance(value, str) or value not in {s.value for s in DataflowStatus}:
        allowed = ", ".join(s.value for s in DataflowStatus)
        raise BadInput(Msg.BAD_PARAM.format(problem=f"status must be one of {allowed}, got {value!r}"))
    return str(value)


def _config(body: dict[str, Any]) -> Any:
    """An object as sent; a JSON string holding an object (what list/get answer) is accepted too."""
    value = body.get("config")
    if isinstance(value, str):
        try:
            value = strict_json(value)
        except ValueError:  # JSONDecodeError too
            raise BadInput(Msg.BAD_PARAM.format(problem="config must be a JSON object")) from None
    if value is not None and not isinstance(value, dict):
        raise BadInput(Msg.BAD_PARAM.format(problem="config must be a JSON object"))
    problem = _unstorable(value, "config", strict=False)
    if problem:
        raise BadInput(Msg.BAD_PARAM.format(problem=problem))
    schedule = (value or {}).get("schedule")
    if schedule is not None:
        problem = valid_cron(schedule)
        if problem:
            raise BadInput(Msg.BAD_PARAM.format(problem=f"config.schedule: {problem}"))
    return value


def _ids(value: Any, name: str) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise BadInput(Msg.BAD_PARAM.format(problem=f"{name} must be a list of integer ids"))
    return value


def _tag_id(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return int(value)
    raise BadInput(Msg.BAD_PARAM.format(problem=f"tag_id must be an integer id, got {value!r}"))


async def _call(fn: Any, *args: Any, **kwargs: Any) -> JSONResponse:
    """Run a handler in the thread pool and turn client mistakes into 400/404 envelopes."""
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except (BadInput, DataflowInputError) as exc:
        return envelope(Code.BAD_REQUEST, str(exc))
    except DataflowNotFound:
        return envelope(Code.NOT_FOUND, Msg.NOT_FOUND)


# --- schedules ---------------------------------------------------------------------------------------------


def schedule_slug(dataflow_id: int) -> str:
    return f"dataflow-{dataflow_id}"


def sync_schedule(gateway: JobGateway, record: DataFlow) -> None:
    """A cron `schedule` in the config of an active dataflow is a schedule of the dataflow deployment.
    Its runs carry the record's run key: should the record be gone, they refuse to run another."""
    cron = record.config.get("schedule") if isinstance(record.config, dict) else None
    if cron and record.status == DataflowStatus.ACTIVE:
        parameters: dict[str, Any] = {"dataflow_id": record.id}
        if record.run_key:
            parameters["run_key"] = record.run_key
        gateway.set_schedule(JOB_TYPE, schedule_slug(record.id), str(cron), parameters)
    else:
        gateway.remove_schedule(JOB_TYPE, schedule_slug(record.id))


# --- records -----------------------------------------------------------------------------------------------


@router.get(
    "/get-dataflows-list",
    response_model=doc.ListAnswer,
    responses=doc.errors(400),
    openapi_extra=doc.LIST_QUERY,
)
async def get_dataflows_list(request: Request) -> JSONResponse:
    query = request.query_params
    return await _call(_list, query.get("page"), query.get("page_size"), query.get("search", ""))


def _list(page_raw: Any, size_raw: Any, search: str) -> JSONResponse:
    page = _int(page_raw, "page", 1, 1, MAX_PAGE)
    page_size = _int(size_raw, "page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    problem = _unstorable(search, "search")
    if problem:
        raise BadInput(Msg.BAD_PARAM.format(problem=problem))
    result = dataflows.list_dataflows(page, page_size, search.strip())
    data = {
        "list": [dataflows.to_dict(r) for r in result.items],
        "pagination": _pagination(page, page_size, result.total),
    }
    return envelope(Code.OK, Msg.SUCCESS, data)


@router.get("/get-dataflow/{dataflow_id}", response_model=doc.DetailsAnswer, responses=doc.errors(400, 404))
async def get_dataflow(dataflow_id: int) -> JSONResponse:
    return await _call(lambda: envelope(Code.OK, Msg.SUCCESS, _details(dataflow_id)))


def _details(dataflow_id: int) -> dict[str, Any]:
    return dataflows.details(get_graph(), dataflows.get_record(dataflow_id))


@router.post(
    "/add-dataflow",
    response_model=doc.DataflowAnswer,
    responses=doc.errors(400) | doc.CREATED_LINKS,
    openapi_extra=doc.json_body(doc.AddDataflowBody),
)
async def add_dataflow(request: Request) -> JSONResponse:
    try:
        body = await _json(request)
    except BadInput as exc:
        return envelope(Code.BAD_REQUEST, str(exc))
    return await _call(_add, body)


def _add(body: dict[str, Any]) -> JSONResponse:
    name = _text(body, "name", required=True)
    description = _text(body, "description", required=True)
    record = dataflows.create(
        get_graph(),
        name=name or "",
        description=description or "",
        status=_status(body) or DataflowStatus.INACTIVE.value,
        created_by=_text(body, "created_by", required=False) or "system",
        config=_config(body),
        children_ids=_ids(body.get("children_ids"), "children_ids"),
        tag_id=_tag_id(body.get("tag_id")),
    )
    sync_schedule(get_gateway(), record)
    return envelope(Code.OK, Msg.CREATED, dataflows.to_dict(record))


@router.put(
    "/update-dataflow/{dataflow_id}",
    response_model=doc.DataflowAnswer,
    responses=doc.errors(400, 404),
    openapi_extra=doc.json_body(doc.UpdateDataflowBody),
)
async def update_dataflow(dataflow_id: int, request: Request) -> JSONResponse:
    try:
        body = await _json(request)
    except BadInput as exc:
        return envelope(Code.BAD_REQUEST, str(exc))
    return await _call(_update, dataflow_id, body)


def _update(dataflow_id: int, body: dict[str, Any]) -> JSONResponse:
    changes: dict[str, Any] = {}
    for key in ("name", "description", "created_by"):
        if key in body and (body[key] is not None or key == "description"):  # null name: left as it is
            value = _text(body, key, required=key != "description")
            changes[key] = value or ""
    if body.get("status") is not None:  # null: left as it is (the column holds no null)
        changes["status"] = _status(body)
    if "config" in body:
        changes["config"] = _config(body)
    record = dataflows.update(get_graph(), dataflow_id, changes)
    sync_schedule(get_gateway(), record)
    return envelope(Code.OK, Msg.UPDATED, dataflows.to_dict(record))


@router.delete(
    "/delete-dataflow/{dataflow_id}", response_model=doc.DeletedAnswer, responses=doc.errors(400, 404)
)
async def delete_dataflow(dataflow_id: int) -> JSONResponse:
    try:
        return await run_in_threadpool(_delete, dataflow_id)
    except DataflowNotFound:
        return envelope(Code.NOT_FOUND, Msg.NOT_FOUND, {})


def _delete(dataflow_id: int) -> JSONResponse:
    dataflows.delete(get_graph(), dataflow_id)
    get_gateway().remove_schedule(JOB_TYPE, schedule_slug(dataflow_id))
    return envelope(Code.OK, Msg.DELETED, {})


# --- tags (not in the document: how tag ids come to exist) ------------------------------------------


@router.post(
    "/add-tag",
    response_model=doc.TagAnswer,
    responses=doc.errors(400),
    openapi_extra=doc.json_body(doc.AddTagBody),
)
async def add_tag(request: Request) -> JSONResponse:
    try:
        body = await _json(request)
    except BadInput as exc:
        return envelope(Code.BAD_REQUEST, str(exc))
    return await _call(_add_tag, body)


def _add_tag(body: dict[str, Any]) -> JSONResponse:
    tag = dataflows.add_tag(get_graph(), _text(body, "name", required=True) or "")
    return envelope(Code.OK, Msg.SUCCESS, {"id": tag.id, "name": tag.name})


@router.get("/get-tags-list", response_model=doc.TagListAnswer, responses=doc.errors())
async def get_tags_list() -> JSONResponse:
    return await _call(lambda: envelope(Code.OK, Msg.SUCCESS, {"list": dataflows.list_tags()}))


# --- execution ---------------------------------------------------------------------------------------------


def run_status(state: JobState) -> RunStatus:
    if state is JobState.COMPLETED:
        return RunStatus.COMPLETED
    if state in {JobState.FAILED, JobState.CRASHED, JobState.CANCELLED}:
        return RunStatus.FAILED
    if state in {JobState.RUNNING, JobState.CANCELLING}:
        return RunStatus.RUNNING
    return RunStatus.PENDING


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _execution_id(status: JobStatus, dataflow_id: int) -> str:
    given = status.parameters.get("execution_id")
    if given:
        return str(given)
    created = status.created or datetime.now(UTC)
    return f"exec_{dataflow_id}_{int(created.timestamp())}"


def _error_message(status: JobStatus) -> str | None:
    if run_status(status.state) is not RunStatus.FAILED:
        return None
    message = (status.message or status.state_name or "").removeprefix(_FAILURE_PREFIX)
    return message or status.state.value.lower()


@router.post(
    "/execute-dataflow/{dataflow_id}",
    response_model=doc.ExecutionAnswer,
    responses=doc.errors(400, 404, 409) | doc.EXECUTED_LINKS,
    openapi_extra=doc.json_body(doc.ExecuteBody, required=False),
)
async def execute_dataflow(dataflow_id: int, request: Request) -> JSONResponse:
    try:
        body = await _json(request, required=False)
    except BadInput as exc:
        return envelope(Code.BAD_REQUEST, str(exc))
    return await _call(_execute, dataflow_id, body)


def _execute(dataflow_id: int, body: dict[str, Any]) -> JSONResponse:
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise BadInput(Msg.BAD_PARAM.format(problem="params must be a JSON object"))
    problem = _unstorable(params, "params")  # they go to Prefect, whose parameters are jsonb
    if problem:
        raise BadInput(Msg.BAD_PARAM.format(problem=problem))
    record = dataflows.get_record(dataflow_id)
    gateway = get_gateway()
    tag = lookup_tag(record.id, record.run_key)
    last = gateway.latest_run(JOB_TYPE, tag, subflows=True)
    if last is not None and not last.state.is_final:
        return _conflict(dataflow_id, last)
    nonce = uuid.uuid4().hex
    now = datetime.now(UTC)
    execution_id = f"exec_{dataflow_id}_{int(now.timestamp())}"
    legacy_id = f"{execution_id}_{nonce[:12]}"
    parameters = {"dataflow_id": dataflow_id, "execution_id": execution_id, "params": params, "nonce": nonce}
    if record.run_key:
        parameters["run_key"] = record.run_key
    run_id = gateway.submit(
        JOB_TYPE,
        parameters,
        api=API,
        legacy_id=legacy_id,
        parent_id=str(dataflow_id),
        tags=[*run_tags(record.id, record.run_key), f"execution:{execution_id}"],
        flow_run_name=execution_id,
        idempotency_key=f"{tag}:after:{last.run_id if last else 'none'}",
    )
    status = gateway.status(run_id, fresh=True)
    if status.parameters.get("nonce") != nonce:
        gateway.forget(API, legacy_id)
        return _conflict(dataflow_id, status)
    data = {
        "execution_id": execution_id,
        "dataflow_id": dataflow_id,
        "status": run_status(status.state).value,
        "started_at": _iso(status.started or status.created or now),
        "params": params,
        "progress": math.floor(status.percent),
    }
    return envelope(Code.OK, Msg.EXECUTED, data)


def _conflict(dataflow_id: int, running: JobStatus) -> JSONResponse:
    data = {
        "dataflow_id": dataflow_id,
        "execution_id": _execution_id(running, dataflow_id),
        "status": run_status(running.state).value,
    }
    message = f"{Msg.ALREADY_RUNNING}: dataflow {dataflow_id} already has a {data['status']} execution"
    return envelope(Code.CONFLICT, message, data)


def _latest(dataflow_id: int) -> JobStatus:
    """The newest execution of this record: run by execute-dataflow, its schedule, or a parent."""
    record = dataflows.get_record(dataflow_id)
    latest = get_gateway().latest_run(JOB_TYPE, lookup_tag(record.id, record.run_key), subflows=True)
    if latest is None:
        raise _NotExecuted(dataflow_id)
    return latest


class _NotExecuted(LookupError):
    pass


@router.get(
    "/get-dataflow-status/{dataflow_id}", response_model=doc.StatusAnswer, responses=doc.errors(400, 404)
)
async def get_dataflow_status(dataflow_id: int) -> JSONResponse:
    try:
        return await _call(_status_of, dataflow_id)
    except _NotExecuted:
        return envelope(Code.NOT_FOUND, f"{Msg.NOT_EXECUTED}: dataflow {dataflow_id} has no execution yet")


def _status_of(dataflow_id: int) -> JSONResponse:
    latest = _latest(dataflow_id)
    state = run_status(latest.state)
    data = {
        "dataflow_id": dataflow_id,
        "execution_id": _execution_id(latest, dataflow_id),
        "status": state.value,
        "progress": math.floor(latest.percent) if state is not RunStatus.COMPLETED else 100,
        "started_at": _iso(latest.started),
        "completed_at": _iso(latest.ended) if latest.state.is_final else None,
        "error_message": _error_message(latest),
    }
    return envelope(Code.OK, Msg.SUCCESS, data)


_LEVEL_NAMES = {"DEBUG": "INFO", "CRITICAL": "ERROR"}


@router.get(
    "/get-dataflow-logs/{dataflow_id}",
    response_model=doc.LogsAnswer,
    responses=doc.errors(400, 404),
    openapi_extra=doc.LOGS_QUERY,
)
async def get_dataflow_logs(dataflow_id: int, request: Request) -> JSONResponse:
    query = request.query_params
    try:
        return await _call(_logs, dataflow_id, query.get("page"), query.get("page_size"))
    except _NotExecuted:
        return envelope(Code.NOT_FOUND, f"{Msg.NOT_EXECUTED}: dataflow {dataflow_id} has no execution yet")


def _logs(dataflow_id: int, page_raw: Any, size_raw: Any) -> JSONResponse:
    page = _int(page_raw, "page", 1, 1, MAX_PAGE)
    page_size = _int(size_raw, "page_size", DEFAULT_LOG_PAGE_SIZE, 1, MAX_LOG_PAGE_SIZE)
    latest = _latest(dataflow_id)
    gateway = get_gateway()
    total, lines = gateway.log_page(
        latest.run_id,
        offset=(page - 1) * page_size,
        limit=page_size,
        min_level=logging.INFO,
        include_subflows=True,  # children run as subflows: their steps belong to this execution's log
    )
    logs = [
        {
            "id": line.index,
            "timestamp": _iso(line.timestamp),
            "level": _LEVEL_NAMES.get(line.level, line.level),
            "message": line.message,
            "component": line.component,
        }
        for line in lines
    ]
    data = {
        "logs": logs,
        "execution_id": _execution_id(latest, dataflow_id),
        "pagination": _pagination(page, page_size, total),
    }
    return envelope(Code.OK, Msg.SUCCESS, data)


# --- lineage -----------------------------------------------------------------------------------------------


@router.get(
    "/get-dataflow-lineage/{dataflow_id}",
    response_model=doc.LineageAnswer,
    responses=doc.errors(400, 404),
    openapi_extra=doc.LINEAGE_QUERY,
)
async def get_dataflow_lineage(dataflow_id: int, request: Request) -> JSONResponse:
    query = request.query_params
    return await _call(_lineage, dataflow_id, query.get("direction"), query.get("depth"))


def _lineage(dataflow_id: int, direction_raw: str | None, depth_raw: Any) -> JSONResponse:
    direction_raw = (direction_raw or Direction.UPSTREAM.value).lower()
    if direction_raw not in {d.value for d in Direction}:
        raise BadInput(
            Msg.BAD_PARAM.format(problem=f"direction must be upstream or downstream, got {direction_raw!r}")
        )
    depth = _int(depth_raw, "depth", DEFAULT_LINEAGE_DEPTH, 1, MAX_LINEAGE_DEPTH)
    dataflows.get_record(dataflow_id)
    lineage = get_graph().lineage(dataflow_id, Direction(direction_raw), depth)
    return envelope(Code.OK, Msg.SUCCESS, lineage.as_dict(dataflows.names(lineage.dataflows)))


# --- scripts -----------------------------------------------------------------------------------------------


@router.post(
    "/create-script",
    response_model=doc.ScriptAnswer,
    responses=doc.errors(400),
    openapi_extra=doc.json_body(doc.CreateScriptBody),
)
async def create_script(request: Request) -> JSONResponse:
    try:
        body = await _json(request)
        text = _text(body, "request_data", required=True) or ""
    except BadInput as exc:
        return envelope(Code.BAD_REQUEST, str(exc))
    provider = get_provider()
    try:
        script = await run_in_threadpool(provider.generate, text)
    except ScriptGenerationError as exc:
        log.warning("create-script via %s failed: %s", provider.name, exc)
        return envelope(Code.SERVER_ERROR, f"脚本生成失败: {exc}")
    message = (
        Msg.SCRIPT_OK
        if script.provider != "offline"
        else f"{Msg.SCRIPT_OK} (offline generator, no LLM configured)"
    )
    data = {
        "script_content": script.content,
        "format": SCRIPT_FORMAT,
        "generated_at": script.generated_at,
        "provider": script.provider,
        "model": script.model,
    }
    return envelope(Code.OK, message, data)
