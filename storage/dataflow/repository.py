"""DataFlow (004) records and their relations: the metadata DB for records, the graph store for relations.

The router translates HTTP to these calls; everything that touches both stores lives here so a bridge
and a worker see the same rules. Client mistakes raise `DataflowInputError` with the message to answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from storage.dataflow.graph import GraphStore
from storage.dataflow.models import MAX_ID, DataFlow, DataFlowTag, new_run_key
from storage.dataflow.naming import unique_en_name
from storage.metadata import session_scope

STATUSES = ("active", "inactive")


class DataflowInputError(ValueError):
    """A client mistake (missing field, unknown tag or child); the message names it."""


class DataflowNotFound(LookupError):
    pass


def storable_id(value: object) -> bool:
    """Whether `value` is an id the id columns can hold: anything else names no record (and must not
    reach the driver, which raises OverflowError or NumericValueOutOfRange on it)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID


@dataclass(frozen=True)
class Page:
    items: list[DataFlow]
    total: int


def legacy_time(value: datetime | None) -> str | None:
    """The document's "2023-12-01 10:00:00" form, in UTC."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def config_text(config: Any) -> str:
    """The config as the document shows it: a compact JSON string of exactly what was stored."""
    return json.dumps(config if config is not None else {}, ensure_ascii=False, separators=(",", ":"))


def to_dict(record: DataFlow) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "en_name": record.en_name,
        "description": record.description,
        "status": record.status,
        "created_at": legacy_time(record.created_at),
        "updated_at": legacy_time(record.updated_at),
        "created_by": record.created_by,
        "config": config_text(record.config),
    }


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_dataflows(page: int, page_size: int, search: str) -> Page:
    """Newest first; `search` matches name or description, case-insensitively, anywhere."""
    query = select(DataFlow)
    count = select(func.count()).select_from(DataFlow)
    if search:
        pattern = f"%{_escape_like(search)}%"
        condition = or_(
            DataFlow.name.ilike(pattern, escape="\\"), DataFlow.description.ilike(pattern, escape="\\")
        )
        query, count = query.where(condition), count.where(condition)
    with session_scope() as session:
        total = int(session.scalar(count) or 0)
        items = list(
            session.scalars(
                query.order_by(DataFlow.id.desc()).offset((page - 1) * page_size).limit(page_size)
            )
        )
    return Page(items, total)


def get_record(dataflow_id: int) -> DataFlow:
    if not storable_id(dataflow_id):
        raise DataflowNotFound(dataflow_id)
    with session_scope() as session:
        record = session.get(DataFlow, dataflow_id)
    if record is None:
        raise DataflowNotFound(dataflow_id)
    return record


def names(ids: Iterable[int]) -> dict[int, str]:
    wanted = [i for i in dict.fromkeys(ids) if storable_id(i)]
    if not wanted:
        return {}
    with session_scope() as session:
        rows = session.execute(select(DataFlow.id, DataFlow.name).where(DataFlow.id.in_(wanted))).all()
    return {int(i): n for i, n in rows}


def tag_names(ids: Iterable[int]) -> dict[int, str]:
    wanted = [i for i in ids if storable_id(i)]
    if not wanted:
        return {}
    with session_scope() as session:
        rows = session.execute(
            select(DataFlowTag.id, DataFlowTag.name).where(DataFlowTag.id.in_(wanted))
        ).all()
    return {int(i): n for i, n in rows}


def details(graph: GraphStore, record: DataFlow) -> dict[str, Any]:
    """The record plus tags, children (in run order) and parents, names read from the records."""
    tag_ids, child_ids, parent_ids = (
        graph.tags(record.id),
        graph.children(record.id),
        graph.parents(record.id),
    )
    known_tags = tag_names(tag_ids)
    known = names([*child_ids, *parent_ids])
    return {
        **to_dict(record),
        "tags": [{"id": t, "name": known_tags[t]} for t in tag_ids if t in known_tags],
        "children": [{"id": c, "name": known[c]} for c in child_ids if c in known],
        "parents": [{"id": p, "name": known[p]} for p in parent_ids if p in known],
    }


def _check_children(graph: GraphStore, children: list[int], parent_id: int | None) -> None:
    missing = sorted(set(children) - set(names(children)))
    if missing:
        raise DataflowInputError(f"参数错误: children_ids: dataflow(s) {missing} do not exist")
    if parent_id is not None:
        for child in children:
            if child == parent_id or parent_id in graph.descendants(child):
                raise DataflowInputError(f"参数错误: children_ids: dataflow {child} would make a cycle")


def _check_tag(tag_id: int | None) -> None:
    if tag_id is not None and not tag_names([tag_id]):
        raise DataflowInputError(f"参数错误: tag_id {tag_id} does not exist (create it with add-tag)")


def create(
    graph: GraphStore,
    *,
    name: str,
    description: str,
    status: str,
    created_by: str,
    config: Any,
    children_ids: list[int],
    tag_id: int | None,
) -> DataFlow:
    _check_children(graph, children_ids, None)
    _check_tag(tag_id)
    for _attempt in range(5):
        try:
            with session_scope() as session:

                def taken(candidate: str, session: Any = session) -> bool:
                    return (
                        session.scalar(select(DataFlow.id).where(DataFlow.en_name == candidate)) is not None
                    )

                now = datetime.now(UTC)
                record = DataFlow(
                    run_key=new_run_key(),
                    name=name,
                    en_name=unique_en_name(name, taken),
                    description=description,
                    status=status,
                    created_by=created_by,
                    config=config,
                    created_at=now,
                    updated_at=now,
                )
                session.add(record)
            break
        except IntegrityError:  # another bridge took the same en_name between check and insert
            continue
    else:
        raise RuntimeError("could not allocate a unique en_name")
    graph.upsert_dataflow(record.id, record.name)
    for position, child in enumerate(dict.fromkeys(children_ids)):
        graph.add_child(record.id, child, position)
    if tag_id is not None:
        graph.tag(record.id, tag_id)
    return record


def update(graph: GraphStore, dataflow_id: int, changes: dict[str, Any]) -> DataFlow:
    """Partial update of name/description/status/config (a new name gets a new en_name)."""
    if not storable_id(dataflow_id):
        raise DataflowNotFound(dataflow_id)
    for _attempt in range(5):
        try:
            record = _update(dataflow_id, changes)
            break
        except IntegrityError:  # another bridge took the same en_name between check and update
            continue
    else:
        raise RuntimeError("could not allocate a unique en_name")
    graph.upsert_dataflow(record.id, record.name)
    return record


def _update(dataflow_id: int, changes: dict[str, Any]) -> DataFlow:
    with session_scope() as session:
        record = session.get(DataFlow, dataflow_id)
        if record is None:
            raise DataflowNotFound(dataflow_id)
        if "name" in changes and changes["name"] != record.name:

            def others(candidate: str) -> bool:
                query = select(DataFlow.id).where(DataFlow.en_name == candidate, DataFlow.id != dataflow_id)
                return session.scalar(query) is not None

            record.en_name = unique_en_name(changes["name"], others)
        for key in ("name", "description", "status", "config", "created_by"):
            if key in changes:
                setattr(record, key, changes[key])
        record.updated_at = datetime.now(UTC)
    return record


def delete(graph: GraphStore, dataflow_id: int) -> None:
    if not storable_id(dataflow_id):
        raise DataflowNotFound(dataflow_id)
    with session_scope() as session:
        record = session.get(DataFlow, dataflow_id)
        if record is None:
            raise DataflowNotFound(dataflow_id)
        session.delete(record)
    graph.delete_dataflow(dataflow_id)


def add_tag(graph: GraphStore, name: str) -> DataFlowTag:
    """The tag called `name`, created when new (tags are unique by name)."""
    for _attempt in range(3):
        with session_scope() as session:
            tag = session.scalar(select(DataFlowTag).where(DataFlowTag.name == name))
            if tag is not None:
                return tag
        try:
            with session_scope() as session:
                tag = DataFlowTag(name=name, created_at=datetime.now(UTC))
                session.add(tag)
            graph.upsert_tag(tag.id, tag.name)
            return tag
        except IntegrityError:
            continue
    raise RuntimeError(f"could not create tag {name!r}")


def list_tags() -> list[dict[str, Any]]:
    with session_scope() as session:
        return [
            {"id": t.id, "name": t.name}
            for t in session.scalars(select(DataFlowTag).order_by(DataFlowTag.id))
        ]
