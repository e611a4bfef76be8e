"""offline: taskIds are never reused — SQLite AUTOINCREMENT on offline_tasks

SQLite hands the highest deleted rowid to the next insert unless the table is AUTOINCREMENT, so a task
removed after a failed submission gave its taskId (and, through it, its flow run's idempotency key and
secret block name) to the next task. The table is rebuilt with its rows; PostgreSQL's sequence never
reuses a value, so there is nothing to do there.

Revision ID: offline_0002_autoincrement
Revises: 0003_offline
"""

from __future__ import annotations

from alembic import op

revision = "offline_0002_autoincrement"
down_revision = "0003_offline"
branch_labels = None
depends_on = None


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    kwargs = {"sqlite_autoincrement": autoincrement}
    with op.batch_alter_table("offline_tasks", recreate="always", table_kwargs=kwargs):
        pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
