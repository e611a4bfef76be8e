"""Statuses, messages and names of the 002 GasFlux Web API, as its document spells them.

The document's messages are Chinese; where it gives none (a missing file field, an invalid priority)
the message here follows its wording. Everything the router answers comes from this table.
"""

from __future__ import annotations

from enum import StrEnum

from storage.jobs import JobState

API = "gasflux"
JOB_TYPE = "gasflux"
VERSION = "1.0.0"
DATA_FIELD = "file"
CONFIG_FIELD = "config"
DATA_EXTENSIONS = (".xlsx", ".xls")
CONFIG_EXTENSIONS = (".yaml", ".yml")
ACTIVE_TASK_LIMIT = 20  # /health: more active tasks than this is "degraded"
ERROR_RATE_LIMIT = 10.0  # /health: percent of requests answered >= 400
RECENT_TASKS = 20
JOB_ID_TAG = "job_id:"


class TaskStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class Priority(StrEnum):
    NORMAL = "normal"
    HIGH = "high"
    LOW = "low"


class SortBy(StrEnum):
    CREATED_AT = "created_at"
    TASK_ID = "task_id"
    FILE_SIZE = "file_size"
    PROCESSING_TIME = "processing_time"


class SortOrder(StrEnum):
    ASC = "asc"
    DESC = "desc"


class FileType(StrEnum):
    REPORT = "report"
    DATA = "data"
    CONFIG = "config"
    METADATA = "metadata"


class Health(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"


STATUS_OF_STATE: dict[JobState, TaskStatus] = {
    JobState.SCHEDULED: TaskStatus.PENDING,
    JobState.PENDING: TaskStatus.PENDING,
    JobState.PAUSED: TaskStatus.PENDING,
    JobState.RUNNING: TaskStatus.PROCESSING,
    JobState.CANCELLING: TaskStatus.PROCESSING,
    JobState.COMPLETED: TaskStatus.COMPLETED,
    JobState.FAILED: TaskStatus.FAILED,
    JobState.CRASHED: TaskStatus.FAILED,
    JobState.CANCELLED: TaskStatus.FAILED,
}
# PUT /task status -> the Prefect state forced on the flow run ("pending" re-queues it for the runner).
STATE_OF_STATUS: dict[TaskStatus, JobState] = {
    TaskStatus.PENDING: JobState.SCHEDULED,
    TaskStatus.PROCESSING: JobState.RUNNING,
    TaskStatus.COMPLETED: JobState.COMPLETED,
    TaskStatus.FAILED: JobState.FAILED,
}
ACTIVE = frozenset({TaskStatus.PENDING, TaskStatus.PROCESSING})


def file_type(name: str) -> FileType:
    """The document's result `type` from a result file's name."""
    lower = name.lower()
    if lower.endswith((".html", ".htm")):
        return FileType.REPORT
    if lower.endswith(".csv"):
        return FileType.DATA
    if lower.endswith((".yaml", ".yml")):
        return FileType.CONFIG
    return FileType.METADATA


class Msg:
    """Response messages."""

    HEALTH_OK = "健康检查完成"
    HEALTH_DEGRADED = "服务不可用"
    ISSUE_ERROR_RATE = "错误率过高 ({:.1f}%)"
    ISSUE_ACTIVE = "活跃任务数量过多 ({})"
    ISSUE_UPLOADS = "上传文件夹不可写"
    ISSUE_OUTPUTS = "输出文件夹不可写"
    ISSUE_TASKS_UNKNOWN = "无法读取任务状态: {}"
    STATS_OK = "统计信息获取成功"
    STATS_RESET = "统计信息重置成功"
    CONFIG_OK = "配置信息获取成功"
    ACCEPTED = "任务已接受并加入处理队列"
    BAD_DATA_TYPE = "无效的数据文件类型。只允许 .xlsx 和 .xls 格式。"
    BAD_CONFIG_TYPE = "无效的配置文件类型。只允许 .yaml 和 .yml 格式。"
    TOO_LARGE = "文件过大。最大尺寸为 {}。"
    NO_FILE = "请求中没有数据文件 (表单字段 file)"
    NO_FILENAME = "未选择数据文件"
    EMPTY_FILE = "上传的数据文件为空"
    BAD_CONFIG = "无效的配置文件: {}"
    BAD_BODY = "无效的请求: {}"
    SUBMIT_FAILED = "任务提交失败: {}"
    TASK_OK = "任务查询成功"
    TASK_NOT_FOUND = "任务未找到"
    TASK_UPDATED = "任务更新成功"
    TASK_DELETED = "任务及相关文件删除成功"
    TASK_BUSY = "无法删除当前正在处理或等待处理的任务"
    DELETE_FAILED = "删除任务文件失败: {}"
    BAD_STATUS = "无效状态。必须是以下之一: pending, processing, completed, failed"
    BAD_PRIORITY = "无效优先级。必须是以下之一: normal, high, low"
    BAD_MESSAGE = "message 必须是字符串 (不含 NUL 字符)"
    NOT_JSON = "请求体必须是 JSON 格式"
    NOTHING_TO_UPDATE = "请求体至少需要包含 status、message 或 priority 之一"
    REPORTS_OK = "报告列表获取成功"
    BAD_PARAM = "Invalid parameter: {}"
    FILE_NOT_FOUND = "文件未找到"
    ACCESS_DENIED = "访问被拒绝"
    NOT_A_FILE = "路径不是文件"
    BUSY = "服务器繁忙: 并发请求数超过 GASFLUX_CONNECTION_LIMIT ({})"
    TIMEOUT = "请求超时: 超过 GASFLUX_CHANNEL_TIMEOUT ({} 秒)"
    # task messages
    QUEUED = "任务已排队,等待处理"
    PROCESSING = "正在处理中"
    DONE = "处理完成成功"
    FAILED = "处理失败"
    FAILED_WITH = "处理失败: {}"
    CANCELLED = "任务已取消"
    MARKED = "任务状态已通过 API 更新为 {}"


class ErrorCode(StrEnum):
    """error_details.error_code of failures the analysis itself did not report."""

    CRASHED = "PROCESS_CRASHED"
    CANCELLED = "CANCELLED"
    MARKED_FAILED = "MARKED_FAILED"


SUPPORTED_ENV = (
    "GASFLUX_HOST",
    "GASFLUX_PORT",
    "GASFLUX_DEBUG",
    "GASFLUX_UPLOAD_FOLDER",
    "GASFLUX_OUTPUT_FOLDER",
    "GASFLUX_MAX_CONTENT_LENGTH",
    "GASFLUX_LOG_LEVEL",
    "GASFLUX_LOG_FILE",
    "GASFLUX_CORS_ORIGINS",
    "GASFLUX_TASK_CLEANUP_INTERVAL",
    "GASFLUX_MAX_TASK_AGE",
    "GASFLUX_THREADS",
    "GASFLUX_CONNECTION_LIMIT",
    "GASFLUX_CHANNEL_TIMEOUT",
)
