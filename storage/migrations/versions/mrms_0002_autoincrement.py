"""mrms: integer row ids are never reused (SQLite AUTOINCREMENT); dataset sizes beyond 2 GiB fit

SQLite hands the highest deleted rowid to the next insert unless the table is AUTOINCREMENT; the
project, history, dataset and parameter-set ids are the client's own strings, but the integer-keyed
tables get the same guarantee as every other table. Rebuilt with their rows, on SQLite only
(PostgreSQL's sequences never reuse a value). mrms_datasets.size_bytes becomes BIGINT: an upload limit
set above 2 GiB stored sizes an INTEGER cannot hold on PostgreSQL.

Revision ID: mrms_0002_autoincrement
Revises: 0004_mrms
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "mrms_0002_autoincrement"
down_revision = "0004_mrms"
branch_labels = None
depends_on = None

TABLES = ("mrms_step_results", "mrms_resource_samples")


def _size_type(new: sa.types.TypeEngine, old: sa.types.TypeEngine) -> None:
    with op.batch_alter_table("mrms_datasets") as batch:
        batch.alter_column("size_bytes", type_=new, existing_type=old, existing_nullable=False)


def upgrade() -> None:
    _size_type(sa.BigInteger(), sa.Integer())
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": True}):
            pass


def downgrade() -> None:
    _size_type(sa.Integer(), sa.BigInteger())
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": False}):
            pass
