"""What the 002 GasFlux API keeps beside a job's flow run: the upload, the client's priority and message.

State, progress and times stay in Prefect; this row only holds what Prefect has no field for (the
document lets a client set a free-text message and a priority on a task).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.metadata import Base
from storage.types import UTCDateTime, utcnow


class GasfluxTask(Base):
    __tablename__ = "gasflux_tasks"

    job_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    flow_run_id: Mapped[str] = mapped_column(String(36), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    upload_dir: Mapped[str] = mapped_column(String(512))  # storage-relative folder of the upload
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    priority: Mapped[str] = mapped_column(String(8), default="normal")
    message: Mapped[str | None] = mapped_column(Text, nullable=True)  # set by PUT /task
    message_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
