"""Jobs of every legacy API: their states and the map from legacy ids onto Prefect flow runs.

The map is the only job fact kept outside Prefect; every read and write of it is here. `JobState` is
Prefect's state types under the platform's own name, so code tables and routers map them without
importing prefect.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, String, UniqueConstraint, func, or_, select
from sqlalchemy.orm import Mapped, mapped_column

from storage.metadata import Base, session_scope
from storage.types import UTCDateTime, utcnow


class JobState(StrEnum):
    """Prefect's state types, so routers map them without importing prefect."""

    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"

    @classmethod
    def of(cls, state: Any | None) -> JobState:
        """The type of a Prefect State (duck-typed, so storage needs no prefect import); a run without a
        state yet is PENDING."""
        return cls(state.type.value) if state is not None else cls.PENDING

    @property
    def is_final(self) -> bool:
        return self in {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.CRASHED}

    @property
    def is_waiting(self) -> bool:
        return self in {JobState.SCHEDULED, JobState.PENDING, JobState.PAUSED}


# Prefect starts the message of a flow run that raised with this; legacy answers and mails show only the rest
FLOW_EXCEPTION_PREFIX = "Flow run encountered an exception: "


def without_exception_prefix(message: str) -> str:
    """A failed run's message as the flow raised it, without Prefect's "Flow run encountered…" prefix."""
    return message.removeprefix(FLOW_EXCEPTION_PREFIX)


class JobRun(Base):
    """One legacy job: `legacy_id` is what the client polls, `parent_id` an earlier id it may also use
    (the 000 upload work_id); `flow_run_id` is the Prefect flow run that is the job's state of record."""

    __tablename__ = "job_runs"
    __table_args__ = (
        UniqueConstraint("api", "legacy_id", name="uq_job_runs_api_legacy_id"),
        Index("ix_job_runs_api_parent_id", "api", "parent_id"),
        Index("ix_job_runs_flow_run_id", "flow_run_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    api: Mapped[str] = mapped_column(String(32))
    legacy_id: Mapped[str] = mapped_column(String(64))
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    job_type: Mapped[str] = mapped_column(String(64))
    flow_run_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def normalize_id(value: str) -> str:
    """Legacy clients send UUIDs with or without dashes and in any case."""
    return value.strip().replace("-", "").lower()


def record_job(*, api: str, legacy_id: str, parent_id: str | None, job_type: str, run_id: str) -> None:
    """Map (`api`, `legacy_id`) onto a flow run; a second record of the same legacy id is a no-op."""
    with session_scope() as session:
        exists = session.scalar(select(JobRun).where(JobRun.api == api, JobRun.legacy_id == legacy_id))
        if exists is None:
            session.add(
                JobRun(
                    api=api, legacy_id=legacy_id, parent_id=parent_id, job_type=job_type, flow_run_id=run_id
                )
            )


def jobs_matching(api: str, wanted: str) -> list[JobRun]:
    """Jobs of `api` whose legacy or parent id equals the normalised `wanted`, newest first."""
    with session_scope() as session:
        return list(
            session.scalars(
                select(JobRun)
                .where(JobRun.api == api)
                .where(or_(*_id_matches(JobRun.legacy_id, wanted), *_id_matches(JobRun.parent_id, wanted)))
                .order_by(JobRun.created_at.desc(), JobRun.id.desc())
            ).all()
        )


def list_jobs(api: str) -> list[JobRun]:
    with session_scope() as session:
        return list(session.scalars(select(JobRun).where(JobRun.api == api).order_by(JobRun.id)).all())


def forget_job(api: str, legacy_id: str) -> None:
    with session_scope() as session:
        for row in session.scalars(select(JobRun).where(JobRun.api == api, JobRun.legacy_id == legacy_id)):
            session.delete(row)


def _id_matches(column: Any, wanted: str) -> list[Any]:
    """Match stored ids whether they were stored with dashes or without."""
    return [func.lower(func.replace(column, "-", "")) == wanted]
