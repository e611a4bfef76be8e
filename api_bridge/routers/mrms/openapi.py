"""How each 003 endpoint appears in /openapi.json: once, for the method the document gives it, with the
fields it reads and the answers it gives.

The handlers read a raw `Request` (the legacy clients send the same fields in the query string or in a
JSON, urlencoded or multipart body), so FastAPI cannot infer any of this: `legacy_route` declares it.
Every other method is routed to the same handler outside the schema and answers the document's "error".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from api_bridge.routers.mrms.codes import DATASET_FIELD, Reply
from storage.mrms.domain import (
    EarlyKey,
    EarlyType,
    LearnStatus,
    ModelingMode,
    ProjectStatus,
    Purpose,
    TimeType,
    YesNo,
)

ANY_METHOD = ["GET", "POST", "PUT", "DELETE", "PATCH"]
MAX_ID = 64


# --- fields ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """One field a handler reads; `json` is its schema in a JSON body when it may be more than text."""

    name: str
    description: str
    required: bool = False
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    json: dict[str, Any] | None = None


def _values(enum: type) -> dict[str, Any]:
    return {"type": "string", "enum": [m.value for m in enum]}


ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID}
OPTIONAL_ID = {"type": "string", "maxLength": MAX_ID}
TIME = {"type": "string", "pattern": "^[0-9]{14}$", "description": "YYYYmmddHHMMSS, UTC"}
NUMBER_TEXT = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}
EARLY_STOP = {
    "type": "object",
    "properties": {
        "early_type": _values(EarlyType),
        "early_key": _values(EarlyKey),
        "early_value": {"type": "number", "minimum": 0, "maximum": 1},
        "minsteps": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
    },
}
RESULT = {
    "type": "object",
    "properties": {
        **{k.value: {"type": "number"} for k in EarlyKey},
        "step": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
    },
}


def _json_or_text(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "string", "description": "the same object as JSON text"}]}


PROJECT_ID = Field("project_id", "The project's id (the client's own).", True, ID)


def hist(required: bool = True, *aliases: str) -> list[Field]:
    """The history number: `hist_no`, or `learn_hist_no` (the document uses both), or an endpoint alias."""
    names = ", ".join(("learn_hist_no", *aliases))
    main = Field("hist_no", f"The learning history number (also accepted as {names}).", required, ID)
    others = [Field(n, "Alias of hist_no.", False, OPTIONAL_ID) for n in ("learn_hist_no", *aliases)]
    return [main, *others]


# --- answers -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    """The HTTP 200 answer of an endpoint: its content types and schemas."""

    description: str
    content: dict[str, Any]
    response_class: type[Response] = PlainTextResponse

    def responses(self) -> dict[int | str, dict[str, Any]]:
        return {200: {"description": self.description, "content": self.content}}


def text_answer(*values: str, description: str) -> Answer:
    schema: dict[str, Any] = {"type": "string"}
    if values:
        schema["enum"] = sorted({*values, Reply.ERROR.value})
    return Answer(description, {"text/plain": {"schema": schema}})


def json_answer(schema: dict[str, Any], description: str) -> Answer:
    error = {"type": "string", "enum": [Reply.ERROR.value]}
    content = {"application/json": {"schema": schema}, "text/plain": {"schema": error}}
    return Answer(description, content, JSONResponse)


OK = text_answer(Reply.OK.value, description='"1" when done, "error" otherwise.')
PROJECT = {
    "type": "object",
    "properties": {
        "project_id": {"type": "string"},
        "project_purpose_cd": {"type": "string"},
        "data_analysis_id": {"type": "string"},
        "status": {"type": "string"},
        "start_time": {"type": "string"},
        "end_time": {"type": "string"},
        "dataset_id": {"type": "string"},
        "modeling_mode": {"type": "string"},
        "early_stop_param": {"type": ["object", "null"]},
        "tag": {"type": "string"},
        "message": {"type": "string"},
        "data_profile": {"type": ["object", "null"]},
    },
}
MODEL = {
    "type": "object",
    "properties": {
        **{
            k: {"type": "string"}
            for k in (
                "learn_hist_no",
                "project_id",
                "param_id",
                "alg_anal_id",
                "alg_id",
                "dp_analysis_id",
                "start_time",
                "end_time",
                "learn_sttus_cd",
                "message",
                "task_idx",
                "model_alias",
                "bookmark_yn",
                "select_yn",
                "trainer",
            )
        },
        "eps": {"type": ["number", "null"]},
        "cpu_percent": {"type": ["number", "null"]},
        "ml_result_json": {"type": ["object", "null"]},
        "stopped_early": {"type": "boolean"},
        "model_file": {"type": "boolean"},
    },
}
HIST_STATUS = {
    "type": "object",
    "properties": {"learn_hist_no": {"type": "string"}, "learn_sttus_cd": _values(LearnStatus)},
}
DOWNLOAD = Answer(
    'The skops model file (header X-Model-SHA256), or "error".',
    {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "text/plain": {"schema": {"type": "string", "enum": [Reply.ERROR.value]}},
    },
    Response,
)


# --- registration ------------------------------------------------------------------------------------
def _openapi(method: str, fields: list[Field], multipart_only: bool) -> dict[str, Any]:
    if method == "GET":
        return {
            "parameters": [
                {
                    "name": f.name,
                    "in": "query",
                    "required": f.required,
                    "description": f.description,
                    "schema": f.schema,
                }
                for f in fields
            ]
        }
    required = [f.name for f in fields if f.required]

    def body(json: bool) -> dict[str, Any]:
        properties = {
            f.name: {**((f.json or f.schema) if json else f.schema), "description": f.description}
            for f in fields
        }
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        return {"schema": schema}

    if multipart_only:
        content = {"multipart/form-data": body(False)}
    else:
        content = {
            "application/json": body(True),
            "application/x-www-form-urlencoded": body(False),
            "multipart/form-data": body(False),
        }
    return {"requestBody": {"required": bool(required), "content": content}}


def legacy_route(
    router: APIRouter,
    path: str,
    method: str,
    *,
    summary: str,
    answer: Answer,
    fields: list[Field] | None = None,
    multipart_only: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Serve `path` for every method; declare it once, for `method`, with its fields and answer."""

    def register(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        name = path.strip("/").replace("/", "_")
        router.add_api_route(
            path,
            endpoint,
            methods=[method],
            operation_id=f"mrms_{name}",
            summary=summary,
            description=(endpoint.__doc__ or "").strip() or None,
            response_class=answer.response_class,
            responses=answer.responses(),
            openapi_extra=_openapi(method, fields or [], multipart_only),
        )
        others = [m for m in ANY_METHOD if m != method]
        router.add_api_route(path, endpoint, methods=others, include_in_schema=False)
        return endpoint

    return register


# --- the fields of each endpoint -----------------------------------------------------------------------
STATUS_FIELD = Field("status", "Project status code.", True, _values(ProjectStatus))
PROJECT_CREATE = [
    PROJECT_ID,
    STATUS_FIELD,
    Field("project_purpose_cd", "1 classification, 10 trend analysis.", True, _values(Purpose)),
    Field("dataset_id", "A dataset_id from /mrms/dataset_upload.", False, OPTIONAL_ID),
    Field("start_time", "Defaults to now.", False, TIME),
    Field("modeling_mode", "1 basic (default), 2 retrain.", False, _values(ModelingMode)),
    Field(
        "early_stop_param", "Early stopping as JSON.", False, {"type": "string"}, _json_or_text(EARLY_STOP)
    ),
    Field("tag", "Comma-separated tags.", False),
]
INSERT_LEARN_HIST = [
    Field("learn_hist_no", "The new history's number (the client's own).", True, ID),
    PROJECT_ID,
    Field("alg_id", "Algorithm; one of the registry is trained here.", False, OPTIONAL_ID),
    Field("param_id", "A stored parameter set, or a JSON object of parameters.", False),
    Field("external", "Y: an external worker trains it and reports back.", False),
    Field("trainer", "Alias of external.", False),
    Field("alg_anal_id", "Kept as given.", False, OPTIONAL_ID),
    Field("dp_analysis_id", "Kept as given.", False, OPTIONAL_ID),
    Field("learn_sttus_cd", "Initial status (default 5).", False, _values(LearnStatus)),
    Field("start_time", "Start time.", False, TIME),
]
STATUS_UPDATE = [
    *hist(),
    Field("sttus_cd", "New status (also accepted as learn_sttus_cd).", True, _values(LearnStatus)),
    Field("learn_sttus_cd", "Alias of sttus_cd.", False, _values(LearnStatus)),
    Field("message", "Free text; '-' when absent.", False),
    Field("task_idx", "Worker index.", False, {"type": "string", "maxLength": 32}),
]
EPS_UPDATE = [*hist(), Field("eps", "Events per second.", True, NUMBER_TEXT, {"type": "number"})]
RESULT_UPDATE = [
    *hist(),
    Field("result", "ml_result_json of one step.", True, {"type": "string"}, _json_or_text(RESULT)),
]
TIME_UPDATE = [
    *hist(),
    Field("type", "start or end.", True, _values(TimeType)),
    Field("curr_time", "The time.", True, TIME),
]
CPU = {"anyOf": [{"type": "object", "properties": {"percent": {"type": "number"}}}, {"type": "number"}]}
MODEL_RESOURCES = [
    *hist(),
    Field("cpu", 'CPU use: {"percent": …} or a number.', True, NUMBER_TEXT, CPU),
    Field("cpu_percent", "Alias of cpu.", False, NUMBER_TEXT, {"type": "number"}),
]
LEARN_LOGS = [*hist(True, "id"), Field("tail", "true: only the last lines.", False, {"type": "string"})]
MODELS_INFO = [PROJECT_ID, *hist(False)]
ALIAS_UPDATE = [
    *hist(),
    Field("model_alias", "The model's alias.", True, {"type": "string", "maxLength": 255}),
]
BOOKMARK = [
    *hist(),
    Field("bookmarkYN", "Y or N (also bookmark_yn).", True, _values(YesNo)),
    Field("bookmark_yn", "Alias of bookmarkYN.", False, _values(YesNo)),
]
DATASET_UPLOAD = [
    Field(DATASET_FIELD, "The table: .csv or .parquet.", True, {"type": "string", "format": "binary"}),
    Field("target", "The column a project predicts.", True, ID),
    Field("dataset_id", "Defaults to a new uuid.", False, OPTIONAL_ID),
    Field("time_column", "Optional time column.", False, {"type": "string", "maxLength": 255}),
    Field("format", "csv or parquet (default: from the file name).", False, {"type": "string"}),
]
PARAM_SET = [
    Field(
        "params",
        "Hyperparameters and training controls.",
        True,
        {"type": "string"},
        _json_or_text({"type": "object"}),
    ),
    Field("alg_id", "Checked against the registry when known.", False, OPTIONAL_ID),
    Field("param_id", "Defaults to a new uuid.", False, OPTIONAL_ID),
]
