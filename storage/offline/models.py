"""The offline platform's (001) integer task ids, and what a task was asked to do — without secrets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.metadata import Base
from storage.types import UTCDateTime, utcnow


class OfflineTask(Base):
    """One submitted task: `id` is the document's integer taskId; `flow_run_id` its Prefect flow run.

    The file-system infos are stored as the client sent them minus `password`; the secret lives only in
    the Prefect Secret block named `secret_block` until the task ends.
    """

    __tablename__ = "offline_tasks"
    # a taskId names one task forever: SQLite would hand a deleted row's id to the next task
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    algorithm: Mapped[str] = mapped_column(String(64))
    email: Mapped[str] = mapped_column(String(254))
    flow_run_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    input_info: Mapped[dict[str, Any]] = mapped_column(JSON)
    output_info: Mapped[dict[str, Any]] = mapped_column(JSON)
    secret_block: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
