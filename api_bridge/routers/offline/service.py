"""What the offline platform (001) does behind its endpoints: validate a job's parameters, submit a task
with its secrets (undoing everything when the submission fails), look a task up, cancel it.

Calls only the task repository, the job gateway and the mailer: no session, no path, no HTTP here.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from uuid import uuid4

from pydantic import ValidationError

from api_bridge.gateway import JobGateway, JobStatus
from api_bridge.routers.offline.codes import API, JOB_TYPE, REASON_PREFIX, SECRET_BLOCK
from api_bridge.run_names import run_name
from flows.registry import JOB_TYPES, JobType
from storage.jobs import without_exception_prefix
from storage.offline import repository as tasks
from storage.offline.models import OfflineTask
from storage.offline.remote import FileSystemInfo
from tasks.offline.notify import TaskReport, send_task_mail

log = logging.getLogger("flowbridge.offline")


class SubmissionFailed(Exception):
    """Prefect did not take the task; the row and the secret block are already gone."""


def offline_job_names() -> list[str]:
    return sorted(name for name, job in JOB_TYPES.items() if job.offline)


def params_problem(job: JobType, params: dict[str, Any]) -> str | None:
    """Why `params` cannot run `job`, in the client's field names; None when they can."""
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


def submit_task(
    gateway: JobGateway,
    job: JobType,
    params: dict[str, Any],
    email: str,
    inputs: FileSystemInfo,
    outputs: FileSystemInfo,
) -> int:
    """Store the task, put its secrets in a Secret block and start its flow run; the taskId.

    Raises SubmissionFailed after undoing the row and the block, so no secret or dangling id stays behind.
    """
    task_id = tasks.create_task(job.name, email, inputs.public(), outputs.public())
    sides = (("input", inputs), ("output", outputs))
    secrets = {side: info.secret() for side, info in sides if info.secret()}
    block = SECRET_BLOCK.format(task_id=task_id) if secrets else None
    parameters = {
        "task_id": task_id,
        "algorithm": job.name,
        "params": params,
        "input_info": inputs.public(),
        "output_info": outputs.public(),
        "email": email,
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
            flow_run_name=run_name("offline", job.name, _input_name(inputs.inputPath), task_id),
            # this submission's own key: Prefect must never hand back a run another task started under the
            # same taskId (an earlier metadata DB, a row discarded after a lost answer)
            idempotency_key=f"{API}:{task_id}:{uuid4()}",
        )
    except Exception as exc:
        log.exception("task %s: submission failed (%s)", task_id, type(exc).__name__)
        _discard(gateway, task_id, block)
        raise SubmissionFailed(type(exc).__name__) from exc
    tasks.attach_run(task_id, str(run_id), block)
    log.info(
        "task %s: %s from %s to %s as flow run %s",
        task_id,
        job.name,
        inputs.describe(inputs.inputPath),
        outputs.describe(outputs.outputPath),
        run_id,
    )
    return task_id


def _discard(gateway: JobGateway, task_id: int, block: str | None) -> None:
    """Undo a submission that did not reach Prefect."""
    try:
        if block:
            gateway.delete_secret(block)
    except Exception as exc:
        log.error("task %s: could not delete its secret block (%s)", task_id, type(exc).__name__)
    tasks.delete_task(task_id)


def find_task(gateway: JobGateway, task_id: int) -> tuple[OfflineTask, JobStatus | None] | None:
    """The task and its run's fresh status (None while it is still being submitted); None when no task has
    this id. Raises JobNotFound when its flow run is gone."""
    row = tasks.get_task(task_id)
    if row is None:
        return None
    if row.flow_run_id is None:
        return row, None
    return row, gateway.status(row.flow_run_id, fresh=True)


def cancel_task(gateway: JobGateway, row: OfflineTask, status: JobStatus, message: str) -> JobStatus:
    """Mark the task cancelled (the flow checks the mark before it starts) and cancel its run; the run's
    status after the request."""
    tasks.request_cancel(row.id)
    return gateway.cancel(status.run_id, message)


def failure_reason(status: JobStatus) -> str:
    """Why a run ended in error, as the task answer's `message` and the mail say it."""
    detail = without_exception_prefix((status.message or status.state_name or "").strip())
    prefix = REASON_PREFIX.get(status.state, status.state.value.lower())
    return f"{prefix}: {detail}" if detail and not detail.lower().startswith(prefix) else detail or prefix


def clean_up_cancelled_before_start(gateway: JobGateway, row: OfflineTask, status: JobStatus) -> None:
    """A run cancelled before it reached a runner runs no flow hook: drop its secret and mail from here."""
    try:
        if row.secret_block:
            gateway.delete_secret(row.secret_block)
    except Exception as exc:
        log.error("task %s: could not delete its secret block (%s)", row.id, type(exc).__name__)
    if tasks.claim_failure_notice(row.id):
        report = TaskReport(
            task_id=row.id,
            algorithm=row.algorithm,
            status="ERROR (cancelled)",
            reason=failure_reason(status),
            add_time=status.created or row.created_at,
            start_time=status.started,
            finish_time=status.ended,
        )
        send_task_mail(report, row.email)


def _input_name(path: str | None) -> str | None:
    """The input's last path component (CEPH `bucket#dir/file`: `file`), for the flow-run name."""
    if not path:
        return None
    return path.replace("#", "/").rstrip("/").rsplit("/", 1)[-1] or None
