"""dataflow: ids never reused (SQLite AUTOINCREMENT) and a per-record run key

Revision ID: 0005a_dataflow_run_keys
Revises: 0005_dataflow

Without AUTOINCREMENT SQLite hands the id of a deleted row (the highest one) to the next row, and the
new dataflow inherited the deleted one's runs, which were found by `dataflow:<id>`. On SQLite both tables
with ids a client sees are rebuilt as AUTOINCREMENT, rows kept; the sequence starts after the highest
dataflow id ever executed (job_runs remembers those), so even ids deleted before this migration do not
come back when they ever had runs. PostgreSQL sequences never reuse a number: there only the column is
added. `run_key` stays NULL on existing rows: their runs carry the plain `dataflow:<id>` tag and are
still found; every new row gets a key, and its runs are found by that key alone.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005a_dataflow_run_keys"
down_revision = "0005_dataflow"
branch_labels = None
depends_on = None

_TABLES = ("dataflows", "dataflow_tags")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in _TABLES:
        if sqlite:
            with op.batch_alter_table(
                table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
            ) as batch:
                if table == "dataflows":
                    batch.add_column(sa.Column("run_key", sa.String(32), nullable=True))
        elif table == "dataflows":
            op.add_column(table, sa.Column("run_key", sa.String(32), nullable=True))
    if sqlite:
        _seed_dataflow_sequence()


def _seed_dataflow_sequence() -> None:
    """Start the dataflow ids after every id that ever had a run (a deleted one's history stays its own)."""
    bind = op.get_bind()
    executed = bind.scalar(
        sa.text(
            "SELECT MAX(CAST(parent_id AS INTEGER)) FROM job_runs "
            "WHERE api = '004' AND parent_id GLOB '[0-9]*' AND LENGTH(parent_id) <= 10"
        )
    )
    if not executed:
        return
    current = bind.scalar(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'dataflows'"))
    if current is None:
        bind.execute(
            sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('dataflows', :seq)"), {"seq": executed}
        )
    elif executed > current:
        bind.execute(
            sa.text("UPDATE sqlite_sequence SET seq = :seq WHERE name = 'dataflows'"), {"seq": executed}
        )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in _TABLES:
        if sqlite:
            with op.batch_alter_table(
                table, recreate="always", table_kwargs={"sqlite_autoincrement": False}
            ) as batch:
                if table == "dataflows":
                    batch.drop_column("run_key")
        elif table == "dataflows":
            op.drop_column(table, "run_key")
