"""What the traffic forecast (000) does behind its endpoints: where an upload lives, whether it can be
forecast, which job a work_id names, how far it is (what a poller is told) and where a finished
forecast's file is.

Calls only the job gateway and storage (its path helpers): no session, no path joining, no HTTP here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from api_bridge.gateway import JobGateway, JobNotFound, JobState, JobStatus
from api_bridge.requests import canonical_uuid
from api_bridge.routers.traffic.codes import API, FORECAST_FILE
from storage.filesystems import Storage, upload_relpath
from storage.jobs import JobRun


def upload_name(work_id: str) -> str:
    """The file name an upload is stored and served under."""
    return f"{work_id}.csv"


def upload_path(storage: Storage, work_id: str) -> str:
    return storage.upload_path(API, work_id, upload_name(work_id))


def upload_input_path(upload_id: str) -> str:
    """The upload as the forecast flow's `input_path`: relative to the storage root the worker opens."""
    return upload_relpath(API, upload_id, upload_name(upload_id))


def resolve_upload(gateway: JobGateway, storage: Storage, work_id: str) -> str | None:
    """An upload id, from the upload's own work_id or from the work_id of a run started on it."""
    if storage.exists(upload_path(storage, work_id)):
        return work_id
    job = gateway.find(API, work_id)
    return job.parent_id if job else None


def quick_check(storage: Storage, work_id: str) -> str | None:
    """Reject what is certainly not a CSV before starting a job; the flow validates the rest."""
    path = upload_path(storage, work_id)
    if storage.size(path) == 0:
        return "告警文件不符合要求: the uploaded file is empty"
    with storage.open(path, "rb") as handle:
        head = handle.read(8192)
    if b"\x00" in head:
        return "告警文件不符合要求: the uploaded file is binary, not a CSV"
    try:
        head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multi-byte character cut at the end of the sample is fine
            try:
                head.decode("gb18030")
            except UnicodeDecodeError:
                return "告警文件不符合要求: the uploaded file is not UTF-8 or GB18030 text"
    return None


def find_job(gateway: JobGateway, any_id: str) -> JobRun | None:
    """The forecast job a work_id (any UUID spelling) names."""
    canonical = canonical_uuid(any_id)
    return gateway.find(API, canonical) if canonical else None


def finished_result(gateway: JobGateway, storage: Storage, job: JobRun, name: str) -> str | None:
    """The storage path of a completed job's result file `name`; None while it is not there."""
    path = storage.run_path(job.flow_run_id, name)
    if gateway.status(job.flow_run_id).state is not JobState.COMPLETED or not storage.exists(path):
        return None
    return path


@dataclass(frozen=True)
class Progress:
    """Where a forecast job stands for a poller: its legacy id, whole percent (99 at most until the result
    file is there), and why it failed or cannot be found (None while it is fine)."""

    work_id: str | None
    percent: int
    problem: str | None = None


def progress(gateway: JobGateway, work_id: str) -> Progress:
    """The job's progress, from the database, Prefect and storage."""
    job = find_job(gateway, work_id)
    if job is None:
        return Progress(None, 0, f"不存在进度文件: no job has work_id {work_id!r}")
    try:
        status = gateway.status(job.flow_run_id)
    except JobNotFound:
        return Progress(None, 0, "the job's flow run no longer exists; upload again")
    ready = status.state is JobState.COMPLETED and gateway.has_result(job.flow_run_id, FORECAST_FILE)
    return _progress(job, status, ready)


def cached_progress(gateway: JobGateway, work_id: str) -> Progress | None:
    """The job's progress from the gateway's memory alone; None whenever it would need the database,
    Prefect or storage. Pollers hammer the endpoint: the router answers from this on the event loop when
    it can and calls `progress` off the loop otherwise."""
    canonical = canonical_uuid(work_id)
    job = gateway.known_job(API, canonical) if canonical else None
    status = gateway.peek_status(job.flow_run_id) if job else None
    if job is None or status is None:
        return None
    if status.state is JobState.COMPLETED:
        if not gateway.has_result(job.flow_run_id, FORECAST_FILE, cached_only=True):
            return None  # the file may be there: only storage can say
        return _progress(job, status, ready=True)
    return _progress(job, status, ready=False)


def _progress(job: JobRun, status: JobStatus, ready: bool) -> Progress:
    """What the poller is told of a job in `status`; `ready`: its forecast file is in storage."""
    percent = min(math.floor(status.percent), 99)
    if status.state is JobState.COMPLETED:
        return Progress(job.legacy_id, 100 if ready else 99)
    if status.state in {JobState.FAILED, JobState.CRASHED, JobState.CANCELLED}:
        reason = status.message or status.state_name
        return Progress(job.legacy_id, percent, f"任务执行存在错误: {reason}")
    return Progress(job.legacy_id, percent)
