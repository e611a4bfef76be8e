"""What /openapi.json says about the 002 GasFlux API: parameters, request bodies and response envelopes.

The router parses its own inputs (so a bad one gets the document's message, e.g. "Invalid parameter:
per_page must be between 1 and 100"), so the parameters and bodies are declared here, for the document
only, through `openapi_extra`; the answers are the {"code","message","data"} envelope with data's keys
mirrored at the top level (see `answer`), declared per endpoint and status with the models below. Every
model allows extra keys: a client must tolerate additions, and the document's examples show some.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, create_model

from api_bridge.routers.gasflux.codes import Health, Priority, SortBy, SortOrder, TaskStatus

# enums inline (the offline API has a TaskStatus component of its own)
Status = Literal[tuple(map(str, TaskStatus))]  # type: ignore[valid-type]
PriorityName = Literal[tuple(map(str, Priority))]  # type: ignore[valid-type]
HealthName = Literal[tuple(map(str, Health))]  # type: ignore[valid-type]
SortByName = Literal[tuple(map(str, SortBy))]  # type: ignore[valid-type]
SortOrderName = Literal[tuple(map(str, SortOrder))]  # type: ignore[valid-type]
MAX_PAGE = 2**31 - 1  # pages beyond are refused: no client needs them, and they bound what is echoed


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- data objects --------------------------------------------------------------------------------------
class GasfluxProgress(_Open):
    stage: str | None
    completed_steps: int
    total_steps: int
    percent: float
    estimated_time_remaining: int | None


class GasfluxResultFile(_Open):
    name: str
    rel_path: str
    download_url: str
    size: int
    type: str


class GasfluxTaskData(_Open):
    task_id: str
    status: Status
    message: str
    updated_at: float | None
    created_at: float | None
    priority: PriorityName
    filename: str
    progress: GasfluxProgress | None = Field(None, description="pending and processing tasks")
    processing_time_seconds: float | None = Field(None, description="finished tasks")
    results: list[GasfluxResultFile] | None = Field(None, description="completed tasks")
    emission_rates_kg_h: dict[str, Any] | None = Field(None, description="completed tasks")
    warnings: list[Any] | None = Field(None, description="completed tasks")
    error: str | None = Field(None, description="failed tasks")
    error_details: dict[str, Any] | None = Field(None, description="failed tasks")


class GasfluxTaskInfo(_Open):
    status: Status
    message: str
    updated_at: float | None
    priority: PriorityName


class GasfluxTaskUpdated(_Open):
    task_id: str
    status: str = Field(description='"updated"')
    task_info: GasfluxTaskInfo


class GasfluxDeleteDetails(_Open):
    folders_deleted: int
    total_size_deleted: int
    task_status: Status


class GasfluxTaskDeleted(_Open):
    task_id: str
    status: str = Field(description='"deleted"')
    details: GasfluxDeleteDetails


class GasfluxTaskRef(_Open):
    task_id: str


class GasfluxTaskBusy(_Open):
    task_status: Status


class GasfluxAccepted(_Open):
    status: str = Field(description='"accepted"')
    job_id: str
    task_status_url: str


class GasfluxReportFile(_Open):
    name: str
    size: int
    type: str
    download_url: str


class GasfluxReport(_Open):
    task_id: str
    report_name: str
    status: Status
    created_at: float | None
    file_count: int
    total_size: int
    processing_time_seconds: float | None
    main_report: GasfluxReportFile | None
    all_files: list[GasfluxReportFile]
    run_directory: str | None


class GasfluxPagination(_Open):
    page: int
    per_page: int
    total_reports: int
    total_pages: int
    has_next: bool
    has_prev: bool


class GasfluxReportFilters(_Open):
    sort_by: SortByName
    sort_order: SortOrderName
    status: Status | None


class GasfluxReports(_Open):
    reports: list[GasfluxReport]
    pagination: GasfluxPagination
    filters: GasfluxReportFilters


class GasfluxHealthData(_Open):
    status: HealthName
    version: str
    timestamp: float
    uptime: str
    storage: dict[str, bool]
    tasks: dict[str, float]
    performance: dict[str, float]
    issues: list[str] | None = Field(None, description="only when degraded (503)")


class GasfluxStatsData(_Open):
    summary: dict[str, Any]
    requests: dict[str, dict[str, int]]
    tasks: dict[str, Any]
    performance: dict[str, float]
    system: dict[str, float]
    recent_tasks: list[dict[str, Any]]


class GasfluxStatsReset(_Open):
    timestamp: float


class GasfluxConfigData(_Open):
    configuration: dict[str, Any]
    environment_variables: dict[str, Any]


class GasfluxFileRef(_Open):
    filename: str


class GasfluxNoData(_Open):
    pass


# --- envelopes -----------------------------------------------------------------------------------------
@cache
def envelope(data: type[BaseModel], name: str | None = None) -> type[BaseModel]:
    """{"code","message","data": <data>} plus data's keys at the top level (never code/message/data)."""
    mirrored: dict[str, Any] = {
        key: (field.annotation | None, Field(None, description=f"= data.{key}"))
        for key, field in data.model_fields.items()
        if key not in ("code", "message", "data")
    }
    return create_model(  # type: ignore[call-overload, no-any-return]
        name or f"{data.__name__}Envelope",
        __base__=_Open,
        __doc__=f"The document's envelope around {data.__name__}, its keys mirrored at the top level.",
        code=(int, Field(description="equals the HTTP status")),
        message=(str, ...),
        data=(data, ...),
        **mirrored,
    )


ErrorEnvelope = envelope(GasfluxNoData, "GasfluxErrorEnvelope")


def _responses(
    ok: int,
    ok_model: type[BaseModel],
    links: dict[str, Any] | None = None,
    **others: tuple[type[BaseModel], str],
) -> dict:
    out: dict[int | str, dict[str, Any]] = {ok: {"model": envelope(ok_model)}}
    if links:
        out[ok]["links"] = links
    for code, (model, description) in others.items():
        body = envelope(model) if model is not GasfluxNoData else ErrorEnvelope
        out[int(code.lstrip("_"))] = {"model": body, "description": description}
    out["default"] = {
        "model": ErrorEnvelope,
        "description": "any other failure in the same envelope: 405 wrong method, 503 over "
        "GASFLUX_CONNECTION_LIMIT, 504 over GASFLUX_CHANNEL_TIMEOUT, 500 internal error",
    }
    return out


def _task_links(pointer: str, *, read_only: bool = False) -> dict[str, Any]:
    """OpenAPI links from an answer naming a task (at JSON `pointer`) to the operations on that task.

    A listing links to reading only: a fuzzer following links must not edit or delete tasks it did not
    create."""
    operations = [("GetTask", "gasflux_get_task")]
    if not read_only:
        operations += [("UpdateTask", "gasflux_update_task"), ("DeleteTask", "gasflux_delete_task")]
    return {
        name: {"operationId": operation, "parameters": {"task_id": f"$response.body#{pointer}"}}
        for name, operation in operations
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


HEALTH = {
    "operation_id": "gasflux_health",
    "responses": _responses(
        200, GasfluxHealthData, _503=(GasfluxHealthData, "degraded: data.issues says why")
    ),
}
STATS = {"operation_id": "gasflux_stats", "responses": _responses(200, GasfluxStatsData)}
STATS_RESET = {"operation_id": "gasflux_stats_reset", "responses": _responses(200, GasfluxStatsReset)}
CONFIG = {"operation_id": "gasflux_config", "responses": _responses(200, GasfluxConfigData)}
UPLOAD = {
    "operation_id": "gasflux_upload",
    "responses": _responses(
        202,
        GasfluxAccepted,
        _task_links("/data/job_id"),
        _400=(GasfluxNoData, "no data file, wrong file type, empty file or invalid config"),
        _413=(GasfluxNoData, "larger than GASFLUX_MAX_CONTENT_LENGTH"),
    ),
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": "flight table, .xlsx/.xls",
                            },
                            "config": {
                                "type": "string",
                                "format": "binary",
                                "description": "optional .yaml/.yml",
                            },
                        },
                    }
                }
            },
        }
    },
}
_NOT_FOUND = (GasfluxTaskRef, "no task with this id")
GET_TASK = {
    "operation_id": "gasflux_get_task",
    "responses": _responses(
        200,
        GasfluxTaskData,
        {
            "DownloadResult": {
                "operationId": "gasflux_download",
                "parameters": {"filename": "$response.body#/data/results/0/rel_path"},
                "description": "a completed task's first result file",
            }
        },
        _404=_NOT_FOUND,
    ),
}
PUT_TASK = {
    "operation_id": "gasflux_update_task",
    "responses": _responses(
        200,
        GasfluxTaskUpdated,
        _400=(GasfluxNoData, "not a JSON object, or an invalid field"),
        _404=_NOT_FOUND,
    ),
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "status": {"type": "string", "enum": [str(v) for v in TaskStatus]},
                            "priority": {"type": "string", "enum": [str(v) for v in Priority]},
                            "message": {"type": "string"},
                        },
                        "anyOf": [{"required": [key]} for key in ("status", "priority", "message")],
                    }
                }
            },
        }
    },
}
DELETE_TASK = {
    "operation_id": "gasflux_delete_task",
    "responses": _responses(
        200, GasfluxTaskDeleted, _404=_NOT_FOUND, _409=(GasfluxTaskBusy, "the task is pending or processing")
    ),
}
REPORTS = {
    "operation_id": "gasflux_reports",
    "responses": _responses(
        200,
        GasfluxReports,
        _task_links("/data/reports/0/task_id", read_only=True),
        _400=(GasfluxNoData, "an invalid query parameter"),
    ),
    "openapi_extra": {
        "parameters": [
            _query(
                "page", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1}, "page number"
            ),
            _query(
                "per_page",
                {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                "reports per page",
            ),
            _query(
                "sort_by",
                {"type": "string", "enum": [str(v) for v in SortBy], "default": str(SortBy.CREATED_AT)},
                "",
            ),
            _query(
                "sort_order",
                {"type": "string", "enum": [str(v) for v in SortOrder], "default": str(SortOrder.DESC)},
                "",
            ),
            _query(
                "status",
                {"type": "string", "enum": [str(v) for v in TaskStatus]},
                "only tasks in this status",
            ),
        ]
    },
}
DOWNLOAD = {
    "operation_id": "gasflux_download",
    "response_class": Response,
    "responses": {
        **_responses(
            200,
            GasfluxNoData,
            _400=(GasfluxFileRef, "the path is a folder"),
            _403=(GasfluxFileRef, "the path leaves the task's folder"),
            _404=(GasfluxFileRef, "no such task or file"),
        ),
        200: {
            "description": "the file (reports inline, other files as attachments)",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        },
    },
}
