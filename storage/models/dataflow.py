"""DataFlow (004) records and the embedded graph store's tables.

The document's hybrid design keeps records (name, config, status) in the relational metadata DB and
relations (tags, parent/child) plus lineage in a graph. Without Neo4j the graph is these two tables in the
same metadata DB, so bridges and workers on other machines share it through the DB URL alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.metadata import Base
from storage.models.types import UTCDateTime, utcnow


class DataFlow(Base):
    """One dataflow record; its config is kept exactly as the client sent it."""

    __tablename__ = "dataflows"
    __table_args__ = (UniqueConstraint("en_name", name="uq_dataflows_en_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
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
    __table_args__ = (UniqueConstraint("name", name="uq_dataflow_tags_name"),)

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
