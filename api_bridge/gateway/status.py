"""What the gateway answers: a job's status and log lines, read back from Prefect, and its errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from prefect.client.schemas.objects import FlowRun

from storage.jobs import JobState
from tasks.progress import decode_description


class JobNotFound(LookupError):
    """No flow run (or no legacy id) by that name."""


class SubmitError(RuntimeError):
    """Prefect did not accept the flow run after bounded retries."""


@dataclass(frozen=True)
class JobStatus:
    run_id: UUID
    state: JobState
    state_name: str
    message: str | None
    percent: float
    stage: str | None
    completed_steps: int | None
    total_steps: int | None
    stage_message: str | None
    created: datetime | None
    started: datetime | None
    ended: datetime | None
    parameters: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    flow_run_name: str | None = None
    deployment_id: UUID | None = None

    @property
    def eta_seconds(self) -> float | None:
        """Remaining time extrapolated from elapsed time and percent done."""
        if self.state is not JobState.RUNNING or not self.started or self.percent <= 0:
            return None
        elapsed = (datetime.now(self.started.tzinfo) - self.started).total_seconds()
        return max(0.0, elapsed * (100.0 - self.percent) / self.percent)

    @property
    def duration_seconds(self) -> float | None:
        if not self.started:
            return None
        end = self.ended or datetime.now(self.started.tzinfo)
        return (end - self.started).total_seconds()


@dataclass(frozen=True)
class LogLine:
    index: int
    timestamp: datetime
    level: str
    message: str
    component: str


def to_status(run: FlowRun, artifact: Any | None) -> JobStatus:
    state = run.state
    state_type = JobState.of(state)
    detail = decode_description(float(artifact.data or 0), artifact.description) if artifact else None
    percent = detail.percent if detail else 0.0
    completed_steps = detail.completed_steps if detail else None
    total_steps = detail.total_steps if detail else None
    if state_type is JobState.COMPLETED:
        percent = 100.0
    else:
        # the flow reports its last step done a moment before Prefect records the run Completed;
        # until then a job is not finished, whatever the artifact says
        percent = min(percent, 99.0)
        if completed_steps is not None and total_steps:
            completed_steps = min(completed_steps, total_steps - 1)
    return JobStatus(
        run_id=run.id,
        state=state_type,
        state_name=state.name if state else "Pending",
        message=state.message if state else None,
        percent=percent,
        stage=detail.stage if detail else None,
        completed_steps=completed_steps,
        total_steps=total_steps,
        stage_message=detail.message if detail else None,
        created=run.created,
        started=run.start_time,
        ended=run.end_time,
        parameters=dict(run.parameters or {}),
        tags=tuple(run.tags or ()),
        flow_run_name=run.name,
        deployment_id=run.deployment_id,
    )
