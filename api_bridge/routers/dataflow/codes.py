"""Codes, statuses and messages of the 004 DataFlow API, as its document lists them (plus 409)."""

from __future__ import annotations

from enum import IntEnum, StrEnum

API = "004"
PREFIX = "/api/data-flow"
JOB_TYPE = "dataflow_run"


class Code(IntEnum):
    """`code` in the envelope; the HTTP status is the same number."""

    OK = 200
    BAD_REQUEST = 400  # 请求参数错误或缺失
    NOT_FOUND = 404  # 请求的资源不存在
    CONFLICT = 409  # not in the document: the dataflow already has a pending or running execution
    SERVER_ERROR = 500  # 服务器内部错误


class DataflowStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


class RunStatus(StrEnum):
    """The document's execution statuses."""

    PENDING = "pending"  # 等待中
    RUNNING = "running"  # 运行中
    COMPLETED = "completed"  # 已完成
    FAILED = "failed"  # 执行失败


class Msg(StrEnum):
    SUCCESS = "success"
    CREATED = "数据流创建成功"
    UPDATED = "数据流更新成功"
    DELETED = "数据流删除成功"
    EXECUTED = "数据流执行成功"
    SCRIPT_OK = "脚本生成成功"
    NOT_FOUND = "数据流不存在"
    NOT_EXECUTED = "数据流尚未执行"
    ALREADY_RUNNING = "数据流正在执行中"
    MISSING_FIELD = "参数错误: 缺少必填字段: {field}"
    BAD_PARAM = "参数错误: {problem}"


MAX_PAGE = 10**9
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
DEFAULT_LOG_PAGE_SIZE = 50
MAX_LOG_PAGE_SIZE = 200  # the Prefect logs API returns at most 200 per call
DEFAULT_LINEAGE_DEPTH = 3
MAX_LINEAGE_DEPTH = 20
SCRIPT_FORMAT = "txt"
