"""mrms: datasets, parameter sets, projects, learning histories, step results, resource samples

Revision ID: 0004_mrms
Revises: 0001_platform
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_mrms"
down_revision = "0001_platform"
branch_labels = ("mrms",)
depends_on = None


def _created() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "mrms_datasets",
        sa.Column("dataset_id", sa.String(64), primary_key=True),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("file_format", sa.String(16), nullable=False),
        sa.Column("original_name", sa.String(255), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("time_column", sa.String(255), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        _created(),
    )
    op.create_table(
        "mrms_param_sets",
        sa.Column("param_id", sa.String(64), primary_key=True),
        sa.Column("alg_id", sa.String(64), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        _created(),
    )
    op.create_table(
        "mrms_projects",
        sa.Column("project_id", sa.String(64), primary_key=True),
        sa.Column("project_purpose_cd", sa.String(8), nullable=False),
        sa.Column("dataset_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("modeling_mode", sa.String(8), nullable=False),
        sa.Column("early_stop_param", sa.JSON(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("data_analysis_id", sa.String(64), nullable=True),
        sa.Column("analysis_run_id", sa.String(36), nullable=True),
        sa.Column("data_profile", sa.JSON(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        _created(),
    )
    op.create_table(
        "mrms_learn_hists",
        sa.Column("learn_hist_no", sa.String(64), primary_key=True),
        sa.Column(
            "project_id",
            sa.String(64),
            sa.ForeignKey("mrms_projects.project_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("param_id", sa.String(64), nullable=True),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("alg_anal_id", sa.String(64), nullable=True),
        sa.Column("alg_id", sa.String(64), nullable=True),
        sa.Column("dp_analysis_id", sa.String(64), nullable=True),
        sa.Column("learn_sttus_cd", sa.String(8), nullable=False),
        sa.Column("task_idx", sa.String(32), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("trainer", sa.String(16), nullable=False),
        sa.Column("flow_run_id", sa.String(36), nullable=True),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("eps", sa.Float(), nullable=True),
        sa.Column("cpu_percent", sa.Float(), nullable=True),
        sa.Column("ml_result_json", sa.JSON(), nullable=True),
        sa.Column("stopped_early", sa.Boolean(), nullable=False),
        sa.Column("model_alias", sa.String(255), nullable=True),
        sa.Column("bookmark_yn", sa.String(1), nullable=False),
        sa.Column("select_yn", sa.String(1), nullable=False),
        sa.Column("model_path", sa.String(512), nullable=True),
        sa.Column("model_sha256", sa.String(64), nullable=True),
        _created(),
    )
    op.create_index("ix_mrms_learn_hists_project_id", "mrms_learn_hists", ["project_id"])
    op.create_table(
        "mrms_step_results",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "learn_hist_no",
            sa.String(64),
            sa.ForeignKey("mrms_learn_hists.learn_hist_no", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("loss", sa.Float(), nullable=True),
        sa.Column("accuracy", sa.Float(), nullable=True),
        sa.Column("val_loss", sa.Float(), nullable=True),
        sa.Column("val_accuracy", sa.Float(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("learn_hist_no", "step", name="uq_mrms_step_results_hist_step"),
    )
    op.create_table(
        "mrms_resource_samples",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "learn_hist_no",
            sa.String(64),
            sa.ForeignKey("mrms_learn_hists.learn_hist_no", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("eps", sa.Float(), nullable=True),
        sa.Column("cpu_percent", sa.Float(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_mrms_resource_samples_hist", "mrms_resource_samples", ["learn_hist_no"])


def downgrade() -> None:
    for table in (
        "mrms_resource_samples",
        "mrms_step_results",
        "mrms_learn_hists",
        "mrms_projects",
        "mrms_param_sets",
        "mrms_datasets",
    ):
        op.drop_table(table)
