"""001 offline algorithm platform: submit a job type on the caller's HDFS/CEPH files, poll, cancel, list.

The document shows only the status query; submit, cancel and list follow its style (camelCase fields,
integer taskId, 'YYYY-MM-DD HH:MM:SS' times). Every call needs the `Authorization` header with a
configured token. Secrets in the file-system infos go to a Prefect Secret block the worker resolves;
they are never stored in the metadata DB, put in flow parameters, logged or echoed.
"""

from __future__ import annotations

import hmac
import logging
import re
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Query, Security
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field, field_validator, model_validator

from api_bridge.errors import register_envelope
from api_bridge.gateway import JobNotFound, JobState, JobStatus, get_gateway
from api_bridge.requests import positive_digits
from api_bridge.routers.offline import service
from api_bridge.routers.offline.codes import (
    CANCEL_MESSAGE,
    ERROR_OF_HTTP,
    PREFIX,
    STATUS_OF,
    ErrorCode,
    TaskStatus,
)
from flowbridge.settings import get_settings
from flows.registry import JOB_TYPES, JobType
from storage.offline.models import OfflineTask
from storage.offline.remote import FileSystemInfo
from tasks.offline.notify import offline_local_time

log = logging.getLogger("flowbridge.offline")
_EMAIL = re.compile(
    r"^[^@\s\"(),:;<>\[\]\\\x00-\x1f\x7f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9\-]+)+$"
)
# offline_tasks.id is an INTEGER column: 32 bits on PostgreSQL (64 on SQLite); a larger taskId names no task
MAX_TASK_ID = 2**31 - 1


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
        known = ", ".join(service.offline_job_names())
        message = f"unknown algorithm {request.algorithm!r}; known: {known}"
        return _error(400, message, ErrorCode.UNKNOWN_ALGORITHM)
    problem = service.params_problem(job, request.params)
    if problem:
        return _error(400, problem)
    try:
        task_id = service.submit_task(
            get_gateway(),
            job,
            request.params,
            request.email,
            request.inputFileSystemInfo,
            request.outputFileSystemInfo,
        )
    except service.SubmissionFailed as exc:
        return _error(503, f"could not start the task ({exc}); try again")
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
    return JSONResponse(task_answer(row, status))


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
    after = service.cancel_task(gateway, row, status, CANCEL_MESSAGE)
    if after.state is JobState.CANCELLED:
        # it never reached a runner, so no flow hook will run: clean up and mail from here
        background.add_task(service.clean_up_cancelled_before_start, gateway, row, after)
    log.info("task %s: cancel requested (%s -> %s)", row.id, status.state.value, after.state.value)
    return JSONResponse(task_answer(row, after))


@router.get("/list", response_model=AlgorithmList, responses=errors(), operation_id="offline_list_algorithms")
def list_algorithms() -> JSONResponse:
    names = service.offline_job_names()
    return JSONResponse({"algorithms": [algorithm_entry(JOB_TYPES[name]) for name in names]})


# --- translation helpers -----------------------------------------------------------------------------------
def algorithm_entry(job: JobType) -> dict[str, Any]:
    """One algorithm of GET /list: its parameters' JSON schema without the one the platform fills in."""
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
    digits = positive_digits(raw_id)
    if digits is None:
        return _error(400, "taskId must be a positive integer (the taskId submit answered)")
    if len(digits) > len(str(MAX_TASK_ID)) or int(digits) > MAX_TASK_ID:
        return _error(404, f"no task has taskId {digits[:24]}{'…' if len(digits) > 24 else ''}")
    return int(digits)


def _load(raw_id: str | None) -> tuple[OfflineTask, JobStatus | None] | Response:
    task_id = parse_task_id(raw_id)
    if isinstance(task_id, Response):
        return task_id
    try:
        found = service.find_task(get_gateway(), task_id)
    except JobNotFound:
        return _error(404, f"task {task_id}'s flow run no longer exists")
    if found is None:
        return _error(404, f"no task has taskId {task_id}")
    return found


def task_answer(row: OfflineTask, status: JobStatus | None) -> dict[str, Any]:
    """The document's task object: times in the platform's time zone, a reason when it ended in error."""
    if status is None:
        return {
            "id": row.id,
            "status": TaskStatus.INITIALING.value,
            "addTime": offline_local_time(row.created_at),
            "startTime": None,
            "finishTime": None,
        }
    mapped = STATUS_OF[status.state]
    answer: dict[str, Any] = {
        "id": row.id,
        "status": mapped.value,
        "addTime": offline_local_time(status.created or row.created_at),
        "startTime": offline_local_time(status.started),
        "finishTime": offline_local_time(status.ended) if status.state.is_final else None,
    }
    if row.cancel_requested_at is not None and not status.state.is_final:
        # Cancelled by the client: a runner that picked the run up at that moment shows it RUNNING for a
        # second or two until the flow sees the mark and ends Cancelled. The task stays ERROR meanwhile.
        answer["status"] = TaskStatus.ERROR.value
        answer["finishTime"] = offline_local_time(row.cancel_requested_at)
        answer["message"] = CANCEL_MESSAGE
    elif mapped is TaskStatus.ERROR:
        answer["message"] = service.failure_reason(status)
    return answer
