"""Offline platform (001): run any offline job type on the caller's HDFS or CEPH files.

The wrapper checks the output is writable, stages the input into project storage, runs the registered
job type's flow as a subflow on it, and copies every result file to outputPath/<taskId>/. The run's
parameters hold the file-system infos without secrets and the name of a Prefect Secret block; the block
is deleted when the run ends, whatever the end. State hooks mail the client on failure, crash and
cancellation (cancellation and crash hooks run in the runner, which outlives the killed process).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from prefect import Task, flow, get_run_logger
from prefect.runtime import flow_run as current_run
from prefect.states import Cancelled, State
from pydantic import BaseModel, Field

from flowbridge.settings import get_settings
from flows.registry import JobType, get_job_type
from storage.filesystems import get_storage
from storage.offline.models import cancel_requested
from tasks.offline.remote_io import (
    StagedInput,
    check_output,
    publish_output,
    remove_staged_input,
    stage_input,
)
from tasks.progress import Progress

STAGES = ["check_output", "stage_input", "run_algorithm", "write_output"]
CANCELLED_BEFORE_START = "cancelled by the client before it started"
log = logging.getLogger("flowbridge.offline")


class AlgorithmRejected(RuntimeError):
    """The job type failed on the staged input (its own message says why)."""


class OfflineTaskParams(BaseModel):
    """Flow-run parameters: visible in the Prefect UI, so they never hold a secret."""

    task_id: int = Field(ge=1, description="The document's integer taskId.")
    algorithm: str = Field(description="A registered job type with offline=True.")
    params: dict[str, Any] = Field(default_factory=dict, description="The job type's own parameters.")
    input_info: dict[str, Any] = Field(description="inputFileSystemInfo without password.")
    output_info: dict[str, Any] = Field(description="outputFileSystemInfo without password.")
    email: str = Field(description="Where failure mails go.")
    credentials: str | None = Field(None, description="Name of the Prefect Secret block with the keys.")


def input_argument(job: JobType, staged: StagedInput) -> str:
    """What the job type's input parameter receives: the staged folder, or its one file."""
    if job.input_folder:
        return staged.folder
    if len(staged.files) != 1:
        raise AlgorithmRejected(
            f"{job.name} takes one input file, but inputPath holds {len(staged.files)} files "
            f"({', '.join(staged.files[:5])}{', ...' if len(staged.files) > 5 else ''})"
        )
    return f"{staged.folder}/{staged.files[0]}"


def _cleanup(parameters: dict[str, Any]) -> None:
    """Delete the Secret block and the staged copy of the input; safe to run twice."""
    block = parameters.get("credentials")
    task_id = parameters.get("task_id")
    if block:
        _delete_secret_block(str(block))
    if task_id:
        try:
            remove_staged_input(int(task_id))
        except Exception as exc:
            log.warning("task %s: could not remove staged input: %s", task_id, exc)


def _delete_secret_block(name: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            document = client.read_block_document_by_name(name, "secret", include_secrets=False)
            client.delete_block_document(document.id)
        except ObjectNotFound:
            return


def _notify(flow_run: Any, state: Any) -> None:
    from storage.offline.models import claim_failure_notice
    from tasks.offline.notify import TaskReport, send_task_mail

    parameters = dict(flow_run.parameters or {})
    task_id = int(parameters.get("task_id") or 0)
    if not task_id or not parameters.get("email") or not claim_failure_notice(task_id):
        return
    kind = "cancelled" if state.is_cancelled() or state.is_cancelling() else state.type.value.lower()
    report = TaskReport(
        task_id=task_id,
        algorithm=str(parameters.get("algorithm")),
        status=f"ERROR ({kind})",
        reason=state.message or state.name,
        add_time=flow_run.created,
        start_time=flow_run.start_time,
        finish_time=state.timestamp,
    )
    send_task_mail(report, str(parameters["email"]))


async def _on_error(flow: Any, flow_run: Any, state: Any) -> None:  # Prefect passes these by name
    """Failure, crash or cancellation: free the secret, then mail the client (never raises)."""
    try:
        await asyncio.to_thread(_cleanup, dict(flow_run.parameters or {}))
    except Exception as exc:
        log.warning("flow run %s: cleanup failed: %s", flow_run.id, exc)
    try:
        await asyncio.to_thread(_notify, flow_run, state)
    except Exception as exc:
        log.warning("flow run %s: failure mail failed: %s", flow_run.id, exc)


async def _on_completion(flow: Any, flow_run: Any, state: Any) -> None:
    try:
        await asyncio.to_thread(_cleanup, dict(flow_run.parameters or {}))
    except Exception as exc:
        log.warning("flow run %s: cleanup failed: %s", flow_run.id, exc)


@flow(
    name="offline-task",
    on_completion=[_on_completion],
    on_failure=[_on_error],
    on_crashed=[_on_error],
    on_cancellation=[_on_error],
)
def offline_task(
    task_id: int,
    algorithm: str,
    input_info: dict[str, Any],
    output_info: dict[str, Any],
    email: str,
    params: dict[str, Any] | None = None,
    credentials: str | None = None,
) -> dict[str, Any] | State:
    p = OfflineTaskParams(
        task_id=task_id,
        algorithm=algorithm,
        params=params or {},
        input_info=input_info,
        output_info=output_info,
        email=email,
        credentials=credentials,
    )
    job = get_job_type(p.algorithm)
    if not job.offline:
        raise AlgorithmRejected(f"{p.algorithm} cannot run on the offline platform")
    logger = get_run_logger()
    if cancel_requested(p.task_id):  # cancelled while a runner was already starting this run
        logger.info("task %s was cancelled before it started", p.task_id)
        return Cancelled(message=CANCELLED_BEFORE_START)
    progress = Progress(STAGES)
    # import the job type's flow (its scientific stack) while the remote I/O below waits on the network
    warm = threading.Thread(target=job.load_flow, name="import-job-flow", daemon=True)
    warm.start()

    progress.stage("check_output", "checking the output folder")
    target = _retrying(check_output)(p.task_id, p.output_info, p.credentials)
    progress.stage("stage_input", "copying the input")
    staged = _retrying(stage_input)(p.task_id, p.input_info, p.credentials)

    progress.stage("run_algorithm", f"running {p.algorithm}")
    arguments = {**p.params, job.input_parameter: input_argument(job, staged)}
    warm.join()
    state = job.load_flow()(**arguments, return_state=True)
    if not state.is_completed():
        raise AlgorithmRejected(f"{p.algorithm} failed: {_reason(state)}")
    child_run = str(state.state_details.flow_run_id)
    logger.info("%s finished as flow run %s", p.algorithm, child_run)

    progress.stage("write_output", "writing the result files")
    written = _retrying(publish_output)(p.task_id, child_run, p.output_info, p.credentials)
    summary = {
        "taskId": p.task_id,
        "algorithm": p.algorithm,
        "algorithm_run": child_run,
        "input_files": staged.files,
        "input_bytes": staged.bytes,
        "output_folder": target,
        "output_files": written,
    }
    get_storage().write_summary(str(current_run.get_id()), summary)
    progress.finish(f"{len(written)} file(s) written")
    return summary


def _retrying(remote_task: Task[Any, Any]) -> Task[Any, Any]:
    """Bounded retries with exponential backoff; the task's condition limits them to transient errors."""
    attempts = get_settings().remote_attempts
    return remote_task.with_options(
        retries=attempts - 1, retry_delay_seconds=[2**i for i in range(max(attempts - 1, 1))]
    )


def _reason(state: Any) -> str:
    message = state.message or state.name
    prefix = "Flow run encountered an exception: "
    return message[len(prefix) :] if message.startswith(prefix) else message
