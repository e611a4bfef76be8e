"""002 GasFlux records: every read and write of the `gasflux_tasks` table.

The bridge's endpoints and the cleanup flow both go through these functions, so a task is created,
changed and removed the same way whoever does it.
"""

from __future__ import annotations

from datetime import datetime

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
