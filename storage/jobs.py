"""The map from a legacy API's ids onto Prefect flow runs (the only job fact kept outside Prefect)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.metadata import Base
from storage.types import UTCDateTime, utcnow


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
