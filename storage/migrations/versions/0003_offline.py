"""offline: integer task ids of the offline algorithm platform (001)

Revision ID: 0003_offline
Revises: 0001_platform
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_offline"
down_revision = "0001_platform"
branch_labels = ("offline",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "offline_tasks",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("algorithm", sa.String(64), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("flow_run_id", sa.String(36), nullable=True),
        sa.Column("input_info", sa.JSON(), nullable=False),
        sa.Column("output_info", sa.JSON(), nullable=False),
        sa.Column("secret_block", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_offline_tasks_flow_run_id", "offline_tasks", ["flow_run_id"])


def downgrade() -> None:
    op.drop_table("offline_tasks")
