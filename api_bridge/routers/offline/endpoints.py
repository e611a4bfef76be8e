"""001 offline algorithm platform: submit a job type on the caller's HDFS/CEPH files, poll, cancel, list.

The document shows only the status query; submit, cancel and list follow its style (camelCase fields,
integer taskId, 'YYYY-MM-DD HH:MM:SS' times). Every call needs the `Authorization` header with a
configured token. Secrets in the file-system infos go to a Prefect Secret block the worker resolves;
they are never stored in the metadata DB, put in flow parameters, logged or echoed.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from typing import Any
from uuid import uuid4

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Query, Security
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from api_bridge.errors import register_envelope
from api_bridge.gateway import JobGateway, JobNotFound, JobState, JobStatus, get_gateway
from api_bridge.routers.offline.codes import (
    API,
    CANCEL_MESSAGE,
    ERROR_OF_HTTP,
    JOB_TYPE,
    PREFIX,
    REASON_PREFIX,
    SECRET_BLOCK,
    STATUS_OF,
    ErrorCode,
    TaskStatus,
)
from flowbridge.settings import get_settings
from flows.registry import JOB_TYPES, JobType
from storage.metadata import session_scope
from storage.offline.models import OfflineTask, claim_failure_notice, request_cancel
from storage.offline.remote import FileSystemInfo
from tasks.offline.notify import TaskReport, legacy_time, send_task_mail

log = logging.getLogger("flowbridge.offline")
_EMAIL = re.compile(
    r"^[^@\s\"(),:;<>\[\]\\\x00-\x1f\x7f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9\-]+)+$"
)
_TASK_ID = re.compile(r"[0-9]+")
# offline_tasks.id is an INTEGER column: 32 bits on PostgreSQL (64 on SQLite); a larger taskId names no task
MAX_TASK_ID = 2**31 - 1
_EXCEPTION_PREFIX = "Flow run encountered an exception: "


def _error(status: int, message: str, code: ErrorCode | None = None) -> JSONResponse:
    code = code or ERROR_OF_HTTP.get(status, ErrorCode.INTERNAL)
    return JSONResponse({"error": code.value, "message": message}, status_code=status)


register_envelope(PREFIX, _error)


TOKEN_HEADER = APIKeyHeader(
    name="Authorization",
    scheme_name="OfflineToken",
    description="`<token>` (as the document shows) or `Bearer <token>`, one of FLOWBRIDGE_API_TOKENS.",
    auto_error=False,
)


def require_token(authorization: str | None = Security(TOKEN_HEADER)) -> None:
    """Accept `Authorization: <token>` (as the document shows) or `Bearer <token>`, compared in constant
    time against every configured token."""
    offered = (authorization or "").strip()
    if offered.lower().startswith("bearer "):
        offered = offered[7:].strip()
    matched = False
    for token in get_settings().api_tokens:
        matched |= hmac.compare_digest(offered.encode(), token.get_secret_value().encode())
    if not offered or not matched:
        raise HTTPException(401, "missing or invalid token in the Authorization header")


router = APIRouter(
    prefix=PREFIX, tags=["001 offline algorithm platform"], dependencies=[Depends(require_token)]
)


# --- request and answer shapes (documented in the OpenAPI schema) ------------------------------------
class SubmitRequest(BaseModel):
    """What POST /task/submit takes (JSON)."""

    algorithm: str = Field(description="A job type from GET /api/algorithm/list.")
    params: dict[str, Any] = Field(default_factory=dict, description="The algorithm's parameters.")
    email: str = Field(max_length=254, description="Receives a mail when the task fails or is cancelled.")
    inputFileSystemInfo: FileSystemInfo
    outputFileSystemInfo: FileSystemInfo

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        """NUL cannot be stored in a text column (PostgreSQL) nor in Prefect's run parameters (jsonb)."""
        if _has_nul(data):
            raise ValueError("no field may contain a NUL character")
        return data

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        value = value.strip()
        if not _EMAIL.fullmatch(value):
            raise ValueError("must be an e-mail address like name@example.com")
        return value

    @model_validator(mode="after")
    def _paths(self) -> SubmitRequest:
        if not self.inputFileSystemInfo.inputPath:
            raise ValueError("inputFileSystemInfo.inputPath is required")
        if not self.outputFileSystemInfo.outputPath:
            raise ValueError("outputFileSystemInfo.outputPath is required")
        return self


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class SubmitAnswer(BaseModel):
    taskId: int


class TaskAnswer(BaseModel):
    id: int
    status: TaskStatus
    addTime: str | None
    startTime: str | None
    finishTime: str | None
    message: str | None = Field(None, description="Only when status is ERROR: the reason (e.g. cancelled).")


class ErrorAnswer(BaseModel):
    error: ErrorCode
    message: str


class AlgorithmInput(BaseModel):
    kind: str = Field(description="file or folder")
    description: str


class AlgorithmOutput(BaseModel):
    folder: str
    description: str


class Algorithm(BaseModel):
    name: str
    description: str
    params: dict[str, Any] = Field(description="JSON schema of the algorithm's parameters.")
    input: AlgorithmInput
    output: AlgorithmOutput


class AlgorithmList(BaseModel):
    algorithms: list[Algorithm]


TASK_ID_DOC = "The taskId submit answered."
# declared as what it is; read as text so that any value answers the documented 400/404, never a 422
TASK_ID_PARAMETER = {
    "parameters": [
        {
            "name": "taskId",
            "in": "query",
            "required": True,
            "description": TASK_ID_DOC,
            "schema": {"type": "integer", "minimum": 1},
        }
    ]
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers an endpoint gives; "4XX" covers the rest (a wrong method answers 405), so no
    FastAPI 422 is declared: malformed requests answer 400 BAD_REQUEST."""
    answers: dict[int | str, dict[str, Any]] = {code: {"model": ErrorAnswer} for code in (*codes, 401)}
    answers["4XX"] = {"model": ErrorAnswer, "description": "Other client errors (405: wrong method)."}
    return answers


# --- endpoints -------------------------------------------------------------------------------------------
@router.post(
    "/task/submit",
    response_model=SubmitAnswer,
    responses=errors(400, 503),
    operation_id="offline_submit_task",
)
def submit(request: SubmitRequest) -> Response:
    job = JOB_TYPES.get(request.algorithm)
    if job is None or not job.offline:
        known = ", ".join(_offline_jobs())
        message = f"unknown algorithm {request.algorithm!r}; known: {known}"
        return _error(400, message, ErrorCode.UNKNOWN_ALGORITHM)
    problem = _check_params(job, request.params)
    if problem:
        return _error(400, problem)
    gateway = get_gateway()
    inputs, outputs = request.inputFileSystemInfo, request.outputFileSystemInfo
    with session_scope() as session:
        row = OfflineTask(
            algorithm=job.name, email=request.email, input_info=inputs.public(), output_info=outputs.public()
        )
        session.add(row)
        session.flush()
        task_id = row.id
    sides = (("input", inputs), ("output", outputs))
    secrets = {side: info.secret() for side, info in sides if info.secret()}
    block = SECRET_BLOCK.format(task_id=task_id) if secrets else None
    parameters = {
        "task_id": task_id,
        "algorithm": job.name,
        "params": request.params,
        "input_info": inputs.public(),
        "output_info": outputs.public(),
        "email": request.email,
        "credentials": block,
    }
    try:
        if block:
            gateway.store_secret(block, json.dumps(secrets))
        run_id = gateway.submit(
            JOB_TYPE,
            parameters,
            api=API,
            legacy_id=str(task_id),
            tags=[f"task_id:{task_id}", f"algorithm:{job.name}"],
            flow_run_name=f"offline-{task_id}-{job.name}",
            # this submission's own key: Prefect must never hand back a run another task started under the
            # same taskId (an earlier metadata DB, a row discarded after a lost answer)
            idempotency_key=f"{API}:{task_id}:{uuid4()}",
        )
    except Exception as exc:
        log.exception("task %s: submission failed (%s)", task_id, type(exc).__name__)
        _discard(gateway, task_id, block)
        return _error(503, f"could not start the task ({type(exc).__name__}); try again")
    with session_scope() as session:
        stored = session.get(OfflineTask, task_id)
        if stored is not None:
            stored.flow_run_id = str(run_id)
            stored.secret_block = block
    log.info(
        "task %s: %s from %s to %s as flow run %s",
        task_id,
        job.name,
        inputs.describe(inputs.inputPath),
        outputs.describe(outputs.outputPath),
        run_id,
    )
    return JSONResponse({"taskId": task_id})


@router.get(
    "/task/get",
    response_model=TaskAnswer,
    responses=errors(400, 404),
    operation_id="offline_get_task",
    openapi_extra=TASK_ID_PARAMETER,
)
def get_task(taskId: str | None = Query(None, include_in_schema=False)) -> Response:
    found = _load(taskId)
    if isinstance(found, Response):
        return found
    row, status = found
    return JSONResponse(_answer(row, status))


@router.post(
    "/task/cancel",
    response_model=TaskAnswer,
    responses=errors(400, 404, 409),
    operation_id="offline_cancel_task",
    openapi_extra=TASK_ID_PARAMETER,
)
def cancel_task(
    background: BackgroundTasks, taskId: str | None = Query(None, include_in_schema=False)
) -> Response:
    found = _load(taskId)
    if isinstance(found, Response):
        return found
    row, status = found
    if status is None:
        return _error(409, f"task {row.id} is still being submitted; try again in a moment")
    if status.state.is_final:
        return _error(409, f"task {row.id} already ended: {STATUS_OF[status.state].value}")
    gateway = get_gateway()
    request_cancel(row.id)
    after = gateway.cancel(status.run_id, CANCEL_MESSAGE)
    if after.state is JobState.CANCELLED:
        # it never reached a runner, so no flow hook will run: clean up and mail from here
        background.add_task(_cancelled_before_start, gateway, row, after)
    log.info("task %s: cancel requested (%s -> %s)", row.id, status.state.value, after.state.value)
    return JSONResponse(_answer(row, after))


@router.get("/list", response_model=AlgorithmList, responses=errors(), operation_id="offline_list_algorithms")
def list_algorithms() -> JSONResponse:
    return JSONResponse({"algorithms": [_describe(JOB_TYPES[name]) for name in _offline_jobs()]})


# --- translation helpers -----------------------------------------------------------------------------------
def _offline_jobs() -> list[str]:
    return sorted(name for name, job in JOB_TYPES.items() if job.offline)


def _check_params(job: JobType, params: dict[str, Any]) -> str | None:
    if job.input_parameter in params:
        return f"params.{job.input_parameter} is set by the platform from inputFileSystemInfo; remove it"
    model = job.parameter_model()
    if model is None:
        return None
    unknown = sorted(set(params) - set(model.model_fields))
    if unknown:
        known = ", ".join(sorted(set(model.model_fields) - {job.input_parameter}))
        return f"params.{unknown[0]} is not a parameter of {job.name} (known: {known})"
    try:
        model.model_validate({**params, job.input_parameter: "staged-input"})
    except ValidationError as exc:
        problems = "; ".join(
            f"params.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        return f"invalid parameters for {job.name}: {problems}"
    return None


def _describe(job: JobType) -> dict[str, Any]:
    model = job.parameter_model()
    schema = model.model_json_schema() if model else {"type": "object", "properties": {}}
    schema.get("properties", {}).pop(job.input_parameter, None)
    if job.input_parameter in schema.get("required", []):
        schema["required"] = [r for r in schema["required"] if r != job.input_parameter]
    return {
        "name": job.name,
        "description": job.description,
        "params": schema,
        "input": {"kind": "folder" if job.input_folder else "file", "description": job.inputs},
        "output": {"folder": "outputPath/<taskId>/", "description": job.outputs},
    }


def parse_task_id(raw_id: str | None) -> int | Response:
    """A taskId as the client wrote it: ASCII digits of a positive integer, else 400; one beyond what the
    column holds is a well-formed id of no task, 404, never sent to the database (SQLite cannot even bind
    an integer beyond 64 bits, and int() refuses more than 4300 digits)."""
    digits = (raw_id or "").strip()
    if not _TASK_ID.fullmatch(digits) or not digits.strip("0"):
        return _error(400, "taskId must be a positive integer (the taskId submit answered)")
    digits = digits.lstrip("0")
    if len(digits) > len(str(MAX_TASK_ID)) or int(digits) > MAX_TASK_ID:
        return _error(404, f"no task has taskId {digits[:24]}{'…' if len(digits) > 24 else ''}")
    return int(digits)


def _load(raw_id: str | None) -> tuple[OfflineTask, JobStatus | None] | Response:
    task_id = parse_task_id(raw_id)
    if isinstance(task_id, Response):
        return task_id
    with session_scope() as session:
        row = session.get(OfflineTask, task_id)
    if row is None:
        return _error(404, f"no task has taskId {task_id}")
    if row.flow_run_id is None:
        return row, None
    try:
        return row, get_gateway().status(row.flow_run_id, fresh=True)
    except JobNotFound:
        return _error(404, f"task {task_id}'s flow run no longer exists")


def _answer(row: OfflineTask, status: JobStatus | None) -> dict[str, Any]:
    if status is None:
        return {
            "id": row.id,
            "status": TaskStatus.INITIALING.value,
            "addTime": legacy_time(row.created_at),
            "startTime": None,
            "finishTime": None,
        }
    mapped = STATUS_OF[status.state]
    answer: dict[str, Any] = {
        "id": row.id,
        "status": mapped.value,
        "addTime": legacy_time(status.created or row.created_at),
        "startTime": legacy_time(status.started),
        "finishTime": legacy_time(status.ended) if status.state.is_final else None,
    }
    if mapped is TaskStatus.ERROR:
        answer["message"] = _reason(status)
    return answer


def _reason(status: JobStatus) -> str:
    detail = (status.message or status.state_name or "").strip()
    detail = detail.removeprefix(_EXCEPTION_PREFIX)
    prefix = REASON_PREFIX.get(status.state, status.state.value.lower())
    return f"{prefix}: {detail}" if detail and not detail.lower().startswith(prefix) else detail or prefix


def _discard(gateway: JobGateway, task_id: int, block: str | None) -> None:
    """Undo a submission that did not reach Prefect, so no secret or dangling id stays behind."""
    try:
        if block:
            gateway.delete_secret(block)
    except Exception as exc:
        log.error("task %s: could not delete its secret block (%s)", task_id, type(exc).__name__)
    with session_scope() as session:
        stored = session.get(OfflineTask, task_id)
        if stored is not None:
            session.delete(stored)


def _cancelled_before_start(gateway: JobGateway, row: OfflineTask, status: JobStatus) -> None:
    try:
        if row.secret_block:
            gateway.delete_secret(row.secret_block)
    except Exception as exc:
        log.error("task %s: could not delete its secret block (%s)", row.id, type(exc).__name__)
    if claim_failure_notice(row.id):
        report = TaskReport(
            task_id=row.id,
            algorithm=row.algorithm,
            status="ERROR (cancelled)",
            reason=_reason(status),
            add_time=status.created or row.created_at,
            start_time=status.started,
            finish_time=status.ended,
        )
        send_task_mail(report, row.email)
