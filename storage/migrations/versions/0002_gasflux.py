"""gasflux: upload, priority and client message of each GasFlux task

Revision ID: 0002_gasflux
Revises: 0001_platform
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_gasflux"
down_revision = "0001_platform"
branch_labels = ("gasflux",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gasflux_tasks",
        sa.Column("job_id", sa.String(36), primary_key=True),
        sa.Column("flow_run_id", sa.String(36), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("upload_dir", sa.String(512), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("priority", sa.String(8), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("message_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_gasflux_tasks_flow_run_id", "gasflux_tasks", ["flow_run_id"])
    op.create_index("ix_gasflux_tasks_created_at", "gasflux_tasks", ["created_at"])


def downgrade() -> None:
    op.drop_table("gasflux_tasks")
