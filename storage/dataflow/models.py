"""DataFlow (004) records and the embedded graph store's tables.

The document's hybrid design keeps records (name, config, status) in the relational metadata DB and
relations (tags, parent/child) plus lineage in a graph. Without Neo4j the graph is these two tables in the
same metadata DB, so bridges and workers on other machines share it through the DB URL alone.

Ids a client sees are never reused: PostgreSQL sequences never hand a number out twice, and on SQLite the
tables are AUTOINCREMENT (without it SQLite gives a deleted row's id, the highest one, to the next row).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.metadata import Base
from storage.types import UTCDateTime, utcnow

# Ids are Integer columns: 32-bit on PostgreSQL, so this is the largest id any backend can hold.
MAX_ID = 2**31 - 1


def new_run_key() -> str:
    return uuid.uuid4().hex


class DataFlow(Base):
    """One dataflow record; its config is kept exactly as the client sent it."""

    __tablename__ = "dataflows"
    __table_args__ = (
        UniqueConstraint("en_name", name="uq_dataflows_en_name"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # What the dataflow's Prefect runs are tagged and looked up by: it dies with the record, so a run can
    # never be attached to another record, even one that gets the same id. NULL only on rows created
    # before run keys existed, whose runs carry the plain `dataflow:<id>` tag (tasks/dataflow/config.py).
    run_key: Mapped[str | None] = mapped_column(String(32), nullable=True, default=new_run_key)
    name: Mapped[str] = mapped_column(String(255))
    en_name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="inactive")
    created_by: Mapped[str] = mapped_column(String(128), default="system")
    config: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DataFlowTag(Base):
    """A tag a dataflow can be linked to by `tag_id` (created through add-tag)."""

    __tablename__ = "dataflow_tags"
    __table_args__ = (UniqueConstraint("name", name="uq_dataflow_tags_name"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GraphNode(Base):
    """A node of the embedded graph store: (label, key) is its identity, as a Neo4j uniqueness constraint."""

    __tablename__ = "graph_nodes"
    __table_args__ = (UniqueConstraint("label", "key", name="uq_graph_nodes_label_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    label: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(1024))
    props: Mapped[Any] = mapped_column(JSON, nullable=True)


class GraphEdge(Base):
    """A typed, directed relationship; (type, src, dst) is unique so writes are MERGE-like."""

    __tablename__ = "graph_edges"
    __table_args__ = (
        UniqueConstraint("src_id", "type", "dst_id", name="uq_graph_edges_src_type_dst"),
        Index("ix_graph_edges_dst_type", "dst_id", "type"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(32))
    src_id: Mapped[int] = mapped_column(ForeignKey("graph_nodes.id", ondelete="CASCADE"))
    dst_id: Mapped[int] = mapped_column(ForeignKey("graph_nodes.id", ondelete="CASCADE"))
    props: Mapped[Any] = mapped_column(JSON, nullable=True)
