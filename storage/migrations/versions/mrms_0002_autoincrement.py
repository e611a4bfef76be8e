"""mrms: integer row ids are never reused — SQLite AUTOINCREMENT on step results and resource samples

SQLite hands the highest deleted rowid to the next insert unless the table is AUTOINCREMENT; the
project, history, dataset and parameter-set ids are the client's own strings, but the integer-keyed
tables get the same guarantee as every other table. Rebuilt with their rows, on SQLite only
(PostgreSQL's sequences never reuse a value).

Revision ID: mrms_0002_autoincrement
Revises: 0004_mrms
"""

from __future__ import annotations

from alembic import op

revision = "mrms_0002_autoincrement"
down_revision = "0004_mrms"
branch_labels = None
depends_on = None

TABLES = ("mrms_step_results", "mrms_resource_samples")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": True}):
            pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": False}):
            pass
