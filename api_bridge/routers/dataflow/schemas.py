"""The 004 DataFlow API as OpenAPI declares it: request bodies, query parameters and the envelopes.

Documentation only: the router parses requests itself (so every mistake answers the document's 400
envelope with its own message) and returns JSONResponse; these models tell /openapi.json, /docs, client
generators and fuzzers what each operation takes and answers.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api_bridge.routers.dataflow.codes import (
    DEFAULT_LINEAGE_DEPTH,
    DEFAULT_LOG_PAGE_SIZE,
    DEFAULT_PAGE_SIZE,
    MAX_LINEAGE_DEPTH,
    MAX_LOG_PAGE_SIZE,
    MAX_PAGE,
    MAX_PAGE_SIZE,
)
from storage.dataflow.models import MAX_ID

# --- request bodies ------------------------------------------------------------------------------------

_TEXT = r"^[^\x00]*[^\s\x00][^\x00]*$"  # something not white space, and no NUL (PostgreSQL text)
_NO_NUL = r"^[^\x00]*$"
Id = Annotated[int, Field(ge=1, le=MAX_ID)]  # what the id columns hold; any other id names no record


class AddDataflowBody(BaseModel):
    model_config = ConfigDict(title="AddDataflowBody")

    name: str = Field(max_length=255, pattern=_TEXT, description="数据流名称")
    description: str = Field(pattern=_TEXT, description="数据流描述")
    status: Literal["active", "inactive"] = Field("inactive", description="状态")
    created_by: str = Field("system", max_length=128, pattern=_NO_NUL, description="创建者")
    config: dict[str, Any] | None = Field(
        None,
        description="配置信息, a JSON object (a JSON string holding one is accepted too); "
        "`schedule`, when given, is a cron expression",
    )
    children_ids: list[Id] = Field(
        default_factory=list,
        description="子节点ID列表, existing dataflows, run before this one in this order",
    )
    tag_id: Id | None = Field(None, description="关联标签ID (from add-tag)")


class UpdateDataflowBody(BaseModel):
    model_config = ConfigDict(title="UpdateDataflowBody")

    name: str | None = Field(None, max_length=255, pattern=_TEXT)
    description: str | None = Field(None, pattern=_NO_NUL)
    status: Literal["active", "inactive"] | None = None
    created_by: str | None = Field(None, max_length=128, pattern=_TEXT)
    config: dict[str, Any] | None = None


class ExecuteBody(BaseModel):
    model_config = ConfigDict(title="ExecuteDataflowBody")

    params: dict[str, Any] = Field(
        default_factory=dict,
        description="执行参数: dotted keys or source/transforms/target override the config for this run, "
        "other keys are run variables (no NUL in strings, integers within 64 bits: Prefect keeps them)",
    )


class AddTagBody(BaseModel):
    name: str = Field(max_length=255, pattern=_TEXT)


class CreateScriptBody(BaseModel):
    request_data: str = Field(pattern=_TEXT, description="需求描述文本")


def json_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """`openapi_extra` declaring a JSON request body (flat models: no $defs to resolve)."""
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


PAGE = query("page", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1}, "页码")
LIST_QUERY = {
    "parameters": [
        PAGE,
        query(
            "page_size",
            {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE},
            "每页记录数",
        ),
        query("search", {"type": "string", "default": ""}, "搜索关键词 (name or description)"),
    ]
}
LOGS_QUERY = {
    "parameters": [
        PAGE,
        query(
            "page_size",
            {"type": "integer", "minimum": 1, "maximum": MAX_LOG_PAGE_SIZE, "default": DEFAULT_LOG_PAGE_SIZE},
            "每页记录数",
        ),
    ]
}
LINEAGE_QUERY = {
    "parameters": [
        query(
            "direction",
            {"type": "string", "enum": ["upstream", "downstream"], "default": "upstream"},
            "upstream: who wrote what it reads; downstream: who reads what it writes",
        ),
        query(
            "depth",
            {"type": "integer", "minimum": 1, "maximum": MAX_LINEAGE_DEPTH, "default": DEFAULT_LINEAGE_DEPTH},
            "dataflow hops",
        ),
    ]
}

# --- answers -------------------------------------------------------------------------------------------


class DataflowPagination(BaseModel):
    page: int
    page_size: int
    total: int
    total_pages: int


class DataflowRecord(BaseModel):
    id: int
    name: str
    en_name: str
    description: str
    status: Literal["active", "inactive"]
    created_at: str | None = Field(description="UTC, YYYY-mm-dd HH:MM:SS")
    updated_at: str | None
    created_by: str
    config: str = Field(description="the stored config as a JSON string")


class DataflowNamed(BaseModel):
    id: int
    name: str


# Named as the resource `tag_id` refers to, so tools that infer links between operations
# (schemathesis' stateful phase) see where those ids come from: add-tag and get-tags-list.
class Tag(DataflowNamed):
    """A tag: add-tag creates it, `tag_id` refers to it."""


class DataflowDetails(DataflowRecord):
    tags: list[Tag]
    children: list[DataflowNamed]
    parents: list[DataflowNamed]


class DataflowPage(BaseModel):
    list: list[DataflowRecord]
    pagination: DataflowPagination


class DataflowExecution(BaseModel):
    execution_id: str
    dataflow_id: int
    status: Literal["pending", "running", "completed", "failed"]
    started_at: str | None
    params: dict[str, Any]
    progress: int


class DataflowRunning(BaseModel):
    dataflow_id: int
    execution_id: str
    status: Literal["pending", "running", "completed", "failed"]


class DataflowExecutionStatus(BaseModel):
    dataflow_id: int
    execution_id: str
    status: Literal["pending", "running", "completed", "failed"]
    progress: int
    started_at: str | None
    completed_at: str | None
    error_message: str | None


class DataflowLogEntry(BaseModel):
    id: int
    timestamp: str | None
    level: str
    message: str
    component: str


class DataflowExecutionLogs(BaseModel):
    logs: list[DataflowLogEntry]
    execution_id: str
    pagination: DataflowPagination


class DataflowLineageNode(BaseModel):
    id: str
    type: Literal["DataFlow", "Dataset"]
    dataflow_id: int | None = None
    name: str | None = None
    depth: int | None = None
    uri: str | None = None


class DataflowLineageEdge(BaseModel):
    source: str
    target: str
    type: Literal["READS", "WRITES"]


class DataflowLineageGraph(BaseModel):
    root: int
    direction: Literal["upstream", "downstream"]
    depth: int
    nodes: list[DataflowLineageNode]
    edges: list[DataflowLineageEdge]


class DataflowTagList(BaseModel):
    list: list[Tag]


class DataflowScript(BaseModel):
    script_content: str
    format: str
    generated_at: str
    provider: str
    model: str | None


class DataflowEnvelope(BaseModel):
    code: int = Field(description="the HTTP status")
    message: str


def _envelope(name: str, data: Any) -> type[BaseModel]:
    return type(name, (DataflowEnvelope,), {"__annotations__": {"data": data}, "__module__": __name__})


DataflowAnswer = _envelope("DataflowAnswer", DataflowRecord)
DetailsAnswer = _envelope("DataflowDetailsAnswer", DataflowDetails)
ListAnswer = _envelope("DataflowListAnswer", DataflowPage)
DeletedAnswer = _envelope("DataflowDeletedAnswer", dict[str, Any])
TagAnswer = _envelope("DataflowTagAnswer", Tag)
TagListAnswer = _envelope("DataflowTagListAnswer", DataflowTagList)
ExecutionAnswer = _envelope("DataflowExecutionAnswer", DataflowExecution)
ConflictAnswer = _envelope("DataflowConflictAnswer", DataflowRunning)
StatusAnswer = _envelope("DataflowStatusAnswer", DataflowExecutionStatus)
LogsAnswer = _envelope("DataflowLogsAnswer", DataflowExecutionLogs)
LineageAnswer = _envelope("DataflowLineageAnswer", DataflowLineageGraph)
ScriptAnswer = _envelope("DataflowScriptAnswer", DataflowScript)
ErrorAnswer = _envelope("DataflowErrorAnswer", dict[str, Any] | None)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers of an operation, all in the envelope; "4XX" (any other client error, e.g. a
    path id that is not an integer answers 400) also keeps FastAPI from declaring a 422 never sent."""
    meaning = {
        400: "请求参数错误或缺失",
        404: "请求的资源不存在",
        409: "数据流正在执行中 (the dataflow already has a pending or running execution)",
        500: "服务器内部错误",
    }
    answers: dict[int | str, dict[str, Any]] = {
        code: {"model": ConflictAnswer if code == 409 else ErrorAnswer, "description": meaning[code]}
        for code in codes
    }
    answers["4XX"] = {"model": ErrorAnswer, "description": "other client errors, in the same envelope"}
    answers[500] = {"model": ErrorAnswer, "description": meaning[500]}
    return answers


def _links(source: str, targets: dict[str, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI links from an answer's dataflow id to the operations that take it (add -> execute ->
    status), so clients and stateful fuzzers reach real records."""
    return {
        200: {
            "links": {
                name: {"operationId": operation, "parameters": {"dataflow_id": source}}
                for name, operation in targets.items()
            }
        }
    }


_OPERATION = "{name}_api_data_flow_{path}__dataflow_id__{method}"
CREATED_LINKS = _links(
    "$response.body#/data/id",
    {
        "GetDataflow": _OPERATION.format(name="get_dataflow", path="get_dataflow", method="get"),
        "UpdateDataflow": _OPERATION.format(name="update_dataflow", path="update_dataflow", method="put"),
        "ExecuteDataflow": _OPERATION.format(name="execute_dataflow", path="execute_dataflow", method="post"),
        "GetDataflowLineage": _OPERATION.format(
            name="get_dataflow_lineage", path="get_dataflow_lineage", method="get"
        ),
        "DeleteDataflow": _OPERATION.format(name="delete_dataflow", path="delete_dataflow", method="delete"),
    },
)
EXECUTED_LINKS = _links(
    "$response.body#/data/dataflow_id",
    {
        "GetDataflowStatus": _OPERATION.format(
            name="get_dataflow_status", path="get_dataflow_status", method="get"
        ),
        "GetDataflowLogs": _OPERATION.format(
            name="get_dataflow_logs", path="get_dataflow_logs", method="get"
        ),
    },
)
