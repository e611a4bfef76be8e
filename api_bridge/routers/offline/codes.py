"""Statuses and error codes of the 001 offline algorithm platform API, and how Prefect states map onto them.

The document defines only the four statuses; error answers are ours: HTTP status plus
{"error": <ErrorCode>, "message": <what is wrong>}.
"""

from __future__ import annotations

from enum import StrEnum

from storage.jobs import JobState

API = "001"
JOB_TYPE = "offline_task"
PREFIX = "/api/algorithm"
SECRET_BLOCK = "offline-task-{task_id}-credentials"
CANCEL_MESSAGE = "cancelled by the client"


class TaskStatus(StrEnum):
    INITIALING = "INITIALING"  # 任务正在初始化 或 正在等待资源 (the document's spelling)
    RUNNING = "RUNNING"  # 运行中
    FINISHED = "FINISHED"  # 成功
    ERROR = "ERROR"  # 失败 (also: cancelled, crashed)


STATUS_OF: dict[JobState, TaskStatus] = {
    JobState.SCHEDULED: TaskStatus.INITIALING,  # waiting for a runner slot (also AwaitingRetry)
    JobState.PENDING: TaskStatus.INITIALING,  # a runner is starting the process
    JobState.RUNNING: TaskStatus.RUNNING,
    JobState.PAUSED: TaskStatus.RUNNING,  # started, suspended by the flow itself
    JobState.CANCELLING: TaskStatus.ERROR,  # cancelled; the process is being stopped
    JobState.CANCELLED: TaskStatus.ERROR,
    JobState.COMPLETED: TaskStatus.FINISHED,
    JobState.FAILED: TaskStatus.ERROR,
    JobState.CRASHED: TaskStatus.ERROR,
}

REASON_PREFIX: dict[JobState, str] = {
    JobState.CANCELLING: "cancelled (stopping)",
    JobState.CANCELLED: "cancelled",
    JobState.FAILED: "failed",
    JobState.CRASHED: "crashed",
}


class ErrorCode(StrEnum):
    BAD_REQUEST = "BAD_REQUEST"
    UNAUTHORIZED = "UNAUTHORIZED"
    NOT_FOUND = "NOT_FOUND"
    UNKNOWN_ALGORITHM = "UNKNOWN_ALGORITHM"
    ALREADY_ENDED = "ALREADY_ENDED"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


ERROR_OF_HTTP: dict[int, ErrorCode] = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.BAD_REQUEST,
    409: ErrorCode.ALREADY_ENDED,
    413: ErrorCode.BAD_REQUEST,
    422: ErrorCode.BAD_REQUEST,
    503: ErrorCode.UNAVAILABLE,
}
