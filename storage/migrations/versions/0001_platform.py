"""platform: map legacy job ids onto Prefect flow runs

Revision ID: 0001_platform
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_platform"
down_revision = None
branch_labels = ("platform",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("api", sa.String(32), nullable=False),
        sa.Column("legacy_id", sa.String(64), nullable=False),
        sa.Column("parent_id", sa.String(64), nullable=True),
        sa.Column("job_type", sa.String(64), nullable=False),
        sa.Column("flow_run_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("api", "legacy_id", name="uq_job_runs_api_legacy_id"),
    )
    op.create_index("ix_job_runs_api_parent_id", "job_runs", ["api", "parent_id"])
    op.create_index("ix_job_runs_flow_run_id", "job_runs", ["flow_run_id"])


def downgrade() -> None:
    op.drop_table("job_runs")
