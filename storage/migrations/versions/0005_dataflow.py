"""dataflow: dataflow records, tags, and the embedded graph store (nodes, edges)

Revision ID: 0005_dataflow
Revises: 0001_platform
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_dataflow"
down_revision = "0001_platform"
branch_labels = ("dataflow",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataflows",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("en_name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("config", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("en_name", name="uq_dataflows_en_name"),
    )
    op.create_table(
        "dataflow_tags",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("name", name="uq_dataflow_tags_name"),
    )
    op.create_table(
        "graph_nodes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("label", sa.String(32), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("props", sa.JSON(), nullable=True),
        sa.UniqueConstraint("label", "key", name="uq_graph_nodes_label_key"),
    )
    op.create_table(
        "graph_edges",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column(
            "src_id", sa.Integer(), sa.ForeignKey("graph_nodes.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "dst_id", sa.Integer(), sa.ForeignKey("graph_nodes.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("props", sa.JSON(), nullable=True),
        sa.UniqueConstraint("src_id", "type", "dst_id", name="uq_graph_edges_src_type_dst"),
    )
    op.create_index("ix_graph_edges_dst_type", "graph_edges", ["dst_id", "type"])


def downgrade() -> None:
    op.drop_table("graph_edges")
    op.drop_table("graph_nodes")
    op.drop_table("dataflow_tags")
    op.drop_table("dataflows")
