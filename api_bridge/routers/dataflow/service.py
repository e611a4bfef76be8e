"""What DataFlow (004) does behind its endpoints: keep a record's cron schedule in step with the record,
start one execution at a time (forgetting a lost race), find the latest execution and its logs, and read
lineage.

Calls only the dataflow repository, the graph store and the job gateway: no session, no path, no HTTP.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from api_bridge.gateway import JobGateway, JobStatus, LogLine
from api_bridge.routers.dataflow.codes import API, JOB_TYPE, DataflowStatus
from api_bridge.run_names import run_name
from storage.dataflow import repository as dataflows
from storage.dataflow.graph import Direction, get_graph
from storage.dataflow.models import DataFlow
from tasks.dataflow.config import lookup_tag, run_tags


class NotExecuted(LookupError):
    """The dataflow exists but has never run."""


class AlreadyRunning(Exception):
    """The dataflow's newest execution has not ended; `running` is its status."""

    def __init__(self, running: JobStatus) -> None:
        super().__init__(running.run_id)
        self.running = running


@dataclass(frozen=True)
class Started:
    execution_id: str
    status: JobStatus
    requested_at: datetime


def schedule_slug(dataflow_id: int) -> str:
    return f"dataflow-{dataflow_id}"


def sync_schedule(gateway: JobGateway, record: DataFlow) -> None:
    """A cron `schedule` in the config of an active dataflow is a schedule of the dataflow deployment.
    Its runs carry the record's run key: should the record be gone, they refuse to run another."""
    cron = record.config.get("schedule") if isinstance(record.config, dict) else None
    if cron and record.status == DataflowStatus.ACTIVE:
        parameters: dict[str, Any] = {"dataflow_id": record.id}
        if record.run_key:
            parameters["run_key"] = record.run_key
        gateway.set_schedule(JOB_TYPE, schedule_slug(record.id), str(cron), parameters)
    else:
        gateway.remove_schedule(JOB_TYPE, schedule_slug(record.id))


def create_dataflow(gateway: JobGateway, **fields: Any) -> DataFlow:
    record = dataflows.create(get_graph(), **fields)
    sync_schedule(gateway, record)
    return record


def update_dataflow(gateway: JobGateway, dataflow_id: int, changes: dict[str, Any]) -> DataFlow:
    record = dataflows.update(get_graph(), dataflow_id, changes)
    sync_schedule(gateway, record)
    return record


def delete_dataflow(gateway: JobGateway, dataflow_id: int) -> None:
    dataflows.delete(get_graph(), dataflow_id)
    gateway.remove_schedule(JOB_TYPE, schedule_slug(dataflow_id))


def details(dataflow_id: int) -> dict[str, Any]:
    return dataflows.details(get_graph(), dataflows.get_record(dataflow_id))


def lineage(dataflow_id: int, direction: Direction, depth: int) -> dict[str, Any]:
    dataflows.get_record(dataflow_id)
    found = get_graph().lineage(dataflow_id, direction, depth)
    return found.as_dict(dataflows.names(found.dataflows))


def execute(gateway: JobGateway, dataflow_id: int, params: dict[str, Any]) -> Started:
    """Start an execution unless one is running (AlreadyRunning). Bridges racing on the same dataflow get
    the same run back (idempotency key); the one whose nonce it does not hold forgets its legacy id and
    answers AlreadyRunning too."""
    record = dataflows.get_record(dataflow_id)
    tag = lookup_tag(record.id, record.run_key)
    last = gateway.latest_run(JOB_TYPE, tag, subflows=True)
    if last is not None and not last.state.is_final:
        raise AlreadyRunning(last)
    nonce = uuid.uuid4().hex
    now = datetime.now(UTC)
    execution_id = f"exec_{dataflow_id}_{int(now.timestamp())}"
    legacy_id = f"{execution_id}_{nonce[:12]}"
    parameters = {"dataflow_id": dataflow_id, "execution_id": execution_id, "params": params, "nonce": nonce}
    if record.run_key:
        parameters["run_key"] = record.run_key
    run_id = gateway.submit(
        JOB_TYPE,
        parameters,
        api=API,
        legacy_id=legacy_id,
        parent_id=str(dataflow_id),
        tags=[*run_tags(record.id, record.run_key), f"execution:{execution_id}"],
        flow_run_name=run_name("dataflow", record.name, execution_id),
        idempotency_key=f"{tag}:after:{last.run_id if last else 'none'}",
    )
    status = gateway.status(run_id, fresh=True)
    if status.parameters.get("nonce") != nonce:
        gateway.forget(API, legacy_id)
        raise AlreadyRunning(status)
    return Started(execution_id, status, now)


def latest_execution(gateway: JobGateway, dataflow_id: int) -> JobStatus:
    """The newest execution of this record: run by execute-dataflow, its schedule, or a parent."""
    record = dataflows.get_record(dataflow_id)
    latest = gateway.latest_run(JOB_TYPE, lookup_tag(record.id, record.run_key), subflows=True)
    if latest is None:
        raise NotExecuted(dataflow_id)
    return latest


def execution_logs(
    gateway: JobGateway, dataflow_id: int, offset: int, limit: int
) -> tuple[JobStatus, int, list[LogLine]]:
    """The latest execution, its number of log lines and one page of them (INFO and above)."""
    latest = latest_execution(gateway, dataflow_id)
    total, lines = gateway.log_page(
        latest.run_id,
        offset=offset,
        limit=limit,
        min_level=logging.INFO,
        include_subflows=True,  # children run as subflows: their steps belong to this execution's log
    )
    return latest, total, list(lines)
