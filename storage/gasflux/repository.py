"""002 GasFlux records: every read and write of the `gasflux_tasks` table.

The bridge's endpoints and the cleanup flow both go through these functions, so a task is created,
changed and removed the same way whoever does it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from storage.gasflux.models import GasfluxTask
from storage.metadata import session_scope


def get_task(job_id: str) -> GasfluxTask | None:
    with session_scope() as session:
        return session.get(GasfluxTask, job_id)


def all_tasks() -> list[GasfluxTask]:
    """Every task, newest first."""
    with session_scope() as session:
        return list(session.scalars(select(GasfluxTask).order_by(GasfluxTask.created_at.desc())))


def tasks_created_before(cutoff: datetime) -> list[GasfluxTask]:
    with session_scope() as session:
        return list(session.scalars(select(GasfluxTask).where(GasfluxTask.created_at < cutoff)))


def delete_task(job_id: str) -> None:
    """Remove a task's row; a row that is already gone is fine (another bridge removed it)."""
    with session_scope() as session:
        row = session.get(GasfluxTask, job_id)
        if row is not None:
            session.delete(row)


def add_task(job_id: str, flow_run_id: str, filename: str, upload_dir: str, size_bytes: int) -> None:
    """Record an accepted upload beside its flow run (only after the submission succeeded)."""
    with session_scope() as session:
        session.add(
            GasfluxTask(
                job_id=job_id,
                flow_run_id=flow_run_id,
                filename=filename,
                upload_dir=upload_dir,
                size_bytes=size_bytes,
            )
        )


def update_task(job_id: str, *, priority: str | None, message: str | None) -> GasfluxTask | None:
    """Set the client's priority and/or message (the message with its time); None if the row is gone."""
    with session_scope() as session:
        stored = session.get(GasfluxTask, job_id)
        if stored is None:
            return None
        if priority is not None:
            stored.priority = priority
        if message is not None:
            stored.message = message
            stored.message_at = datetime.now(UTC)
        return stored
