"""Every read and write of the offline platform's (001) task records, in one place.

The router and its service call these instead of opening sessions; the flow uses the cancellation and
notice claims. Rows never hold a secret: only the name of the Prefect Secret block that does.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from storage.metadata import session_scope
from storage.offline.models import OfflineTask
from storage.types import utcnow


def create_task(algorithm: str, email: str, input_info: dict[str, Any], output_info: dict[str, Any]) -> int:
    """Insert a task before it is submitted, so its integer taskId exists to name the run and its secret."""
    with session_scope() as session:
        row = OfflineTask(algorithm=algorithm, email=email, input_info=input_info, output_info=output_info)
        session.add(row)
        session.flush()
        return row.id


def attach_run(task_id: int, flow_run_id: str, secret_block: str | None) -> None:
    """Record the flow run (and secret block) a submitted task got; a row deleted meanwhile stays deleted."""
    with session_scope() as session:
        stored = session.get(OfflineTask, task_id)
        if stored is not None:
            stored.flow_run_id = flow_run_id
            stored.secret_block = secret_block


def get_task(task_id: int) -> OfflineTask | None:
    with session_scope() as session:
        return session.get(OfflineTask, task_id)


def delete_task(task_id: int) -> None:
    """Forget a task whose submission failed, so its taskId names nothing."""
    with session_scope() as session:
        stored = session.get(OfflineTask, task_id)
        if stored is not None:
            session.delete(stored)


def request_cancel(task_id: int) -> None:
    with session_scope() as session:
        session.execute(
            update(OfflineTask)
            .where(OfflineTask.id == task_id, OfflineTask.cancel_requested_at.is_(None))
            .values(cancel_requested_at=utcnow())
        )


def cancel_requested(task_id: int) -> bool:
    """A runner may already hold a run the bridge cancels before it starts; the flow asks this first."""
    with session_scope() as session:
        row = session.get(OfflineTask, task_id)
        return row is not None and row.cancel_requested_at is not None


def claim_failure_notice(task_id: int) -> bool:
    """True for exactly one caller per task: a cancellation can be seen by the flow process, the runner
    and the bridge, and the client must get one mail, not three."""
    with session_scope() as session:
        result = session.execute(
            update(OfflineTask)
            .where(OfflineTask.id == task_id, OfflineTask.notified_at.is_(None))
            .values(notified_at=utcnow())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
