"""The graph store of DataFlow (004): tags, parent/child relations and lineage.

One small interface, two implementations with the same contract (tests/unit/dataflow/test_graph_contract.py):
`Neo4jGraph` through the official driver (Cypher, MERGE only, constraints created at start) when
`neo4j_uri` is set, and `SqlGraph`, the embedded default, as node/edge tables in the metadata DB with
recursive CTE queries, so bridges and workers on other machines share it through the DB URL alone.

Model: (:DataFlow {id})-[:TAGGED]->(:Tag {id}); (:DataFlow)-[:CHILD {position}]->(:DataFlow);
(:DataFlow)-[:READS]->(:Dataset {uri})<-[:WRITES]-(:DataFlow); (:Run {id})-[:OF]->(:DataFlow).
Lineage depth counts dataflow hops: upstream depth 1 is the dataflows writing what the root reads.
"""

from __future__ import annotations

import abc
import json
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, delete, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from storage.dataflow.models import GraphEdge, GraphNode


class Label(StrEnum):
    DATAFLOW = "DataFlow"
    TAG = "Tag"
    DATASET = "Dataset"
    RUN = "Run"


class Rel(StrEnum):
    TAGGED = "TAGGED"
    CHILD = "CHILD"
    READS = "READS"
    WRITES = "WRITES"
    OF = "OF"


class Direction(StrEnum):
    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"


@dataclass(frozen=True)
class RunRecord:
    """What one finished (or failed) run leaves in the graph."""

    run_id: str
    dataflow_id: int
    status: str
    rows_read: int | None = None
    rows_written: int | None = None
    started_at: str | None = None
    ended_at: str | None = None
    error: str | None = None
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hop:
    """One lineage step: `reader` reads `dataset`, which `writer` writes."""

    writer: int
    dataset: str
    reader: int


@dataclass
class Lineage:
    root: int
    direction: Direction
    depth: int
    dataflows: dict[int, int] = field(default_factory=dict)  # dataflow id -> hop distance from root
    hops: set[Hop] = field(default_factory=set)

    def as_dict(self, names: dict[int, str] | None = None) -> dict[str, Any]:
        names = names or {}
        datasets = sorted({h.dataset for h in self.hops})
        nodes: list[dict[str, Any]] = [
            {
                "id": f"dataflow:{i}",
                "type": Label.DATAFLOW.value,
                "dataflow_id": i,
                "name": names.get(i),
                "depth": d,
            }
            for i, d in sorted(self.dataflows.items(), key=lambda item: (item[1], item[0]))
        ]
        nodes += [{"id": f"dataset:{uri}", "type": Label.DATASET.value, "uri": uri} for uri in datasets]
        edges: set[tuple[str, str, str]] = set()
        for hop in self.hops:
            edges.add((f"dataflow:{hop.writer}", f"dataset:{hop.dataset}", Rel.WRITES.value))
            edges.add((f"dataflow:{hop.reader}", f"dataset:{hop.dataset}", Rel.READS.value))
        return {
            "root": self.root,
            "direction": self.direction.value,
            "depth": self.depth,
            "nodes": nodes,
            "edges": [{"source": s, "target": t, "type": r} for s, t, r in sorted(edges)],
        }


class GraphStore(abc.ABC):
    """Relations and lineage of dataflows; every write is idempotent (MERGE semantics)."""

    @abc.abstractmethod
    def ensure_schema(self) -> None: ...

    @abc.abstractmethod
    def upsert_dataflow(self, dataflow_id: int, name: str) -> None: ...

    @abc.abstractmethod
    def delete_dataflow(self, dataflow_id: int) -> None:
        """Remove the dataflow, every relation it has, and its runs (datasets stay: others may use them)."""

    @abc.abstractmethod
    def upsert_tag(self, tag_id: int, name: str) -> None: ...

    @abc.abstractmethod
    def tag(self, dataflow_id: int, tag_id: int) -> None: ...

    @abc.abstractmethod
    def tags(self, dataflow_id: int) -> list[int]: ...

    @abc.abstractmethod
    def add_child(self, parent_id: int, child_id: int, position: int) -> None: ...

    @abc.abstractmethod
    def children(self, dataflow_id: int) -> list[int]:
        """Children in run order: by position, then id."""

    @abc.abstractmethod
    def parents(self, dataflow_id: int) -> list[int]: ...

    @abc.abstractmethod
    def record_run(self, run: RunRecord) -> None: ...

    @abc.abstractmethod
    def run(self, run_id: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def lineage(self, dataflow_id: int, direction: Direction, depth: int) -> Lineage: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def descendants(self, dataflow_id: int) -> set[int]:
        """Every dataflow below this one through CHILD relations (cycle checks)."""
        seen: set[int] = set()
        frontier = [dataflow_id]
        while frontier:
            nxt = [c for node in frontier for c in self.children(node) if c not in seen]
            seen.update(nxt)
            frontier = nxt
        return seen


# --- embedded: tables in the metadata DB ------------------------------------------------------------------

# CROSS JOIN fixes SQLite's join order (walk -> edge by src/dst index); PostgreSQL plans it freely anyway.
_UPSTREAM_CTE = """
WITH RECURSIVE walk(node_id, depth) AS (
    SELECT CAST(:start AS INTEGER), 0
    UNION
    SELECT w.src_id, walk.depth + 1
    FROM walk CROSS JOIN graph_edges r CROSS JOIN graph_edges w
    WHERE r.src_id = walk.node_id AND r.type = 'READS'
      AND w.dst_id = r.dst_id AND w.type = 'WRITES' AND walk.depth < :depth
)
SELECT node_id, MIN(depth) AS depth FROM walk GROUP BY node_id
"""

_DOWNSTREAM_CTE = """
WITH RECURSIVE walk(node_id, depth) AS (
    SELECT CAST(:start AS INTEGER), 0
    UNION
    SELECT r.src_id, walk.depth + 1
    FROM walk CROSS JOIN graph_edges w CROSS JOIN graph_edges r
    WHERE w.src_id = walk.node_id AND w.type = 'WRITES'
      AND r.dst_id = w.dst_id AND r.type = 'READS' AND walk.depth < :depth
)
SELECT node_id, MIN(depth) AS depth FROM walk GROUP BY node_id
"""


def _position(props: Any) -> int:
    """Edge props come back as text from raw SQL on SQLite and as a dict on PostgreSQL."""
    if isinstance(props, str):
        props = json.loads(props)
    return int((props or {}).get("position", 0))


class SqlGraph(GraphStore):
    """The graph as `graph_nodes`/`graph_edges` rows; identity constraints make every write a MERGE."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def ensure_schema(self) -> None:
        GraphNode.__table__.create(self.engine, checkfirst=True)  # type: ignore[attr-defined]
        GraphEdge.__table__.create(self.engine, checkfirst=True)  # type: ignore[attr-defined]

    # --- primitives ---------------------------------------------------------------------------------
    def _insert(self, conn: Connection, model: type[Any]) -> Any:
        return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(model)

    def _node(self, conn: Connection, label: Label, key: str, props: dict[str, Any] | None = None) -> int:
        stmt = self._insert(conn, GraphNode).values(label=label.value, key=key, props=props or {})
        if props is None:
            stmt = stmt.on_conflict_do_nothing(index_elements=["label", "key"])
        else:
            stmt = stmt.on_conflict_do_update(index_elements=["label", "key"], set_={"props": props})
        conn.execute(stmt)
        return int(
            conn.scalar(select(GraphNode.id).where(GraphNode.label == label.value, GraphNode.key == key))
        )

    def _find(self, conn: Connection, label: Label, key: str) -> int | None:
        return conn.scalar(select(GraphNode.id).where(GraphNode.label == label.value, GraphNode.key == key))

    def _edge(
        self, conn: Connection, rel: Rel, src: int, dst: int, props: dict[str, Any] | None = None
    ) -> None:
        stmt = self._insert(conn, GraphEdge).values(type=rel.value, src_id=src, dst_id=dst, props=props or {})
        if props is None:
            stmt = stmt.on_conflict_do_nothing(index_elements=["type", "src_id", "dst_id"])
        else:
            stmt = stmt.on_conflict_do_update(
                index_elements=["type", "src_id", "dst_id"], set_={"props": props}
            )
        conn.execute(stmt)

    def _keys(self, conn: Connection, sql: str, **params: Any) -> list[Any]:
        return list(conn.execute(text(sql), params).all())

    # --- interface ----------------------------------------------------------------------------------
    def upsert_dataflow(self, dataflow_id: int, name: str) -> None:
        with self.engine.begin() as conn:
            self._node(conn, Label.DATAFLOW, str(dataflow_id), {"name": name})

    def delete_dataflow(self, dataflow_id: int) -> None:
        with self.engine.begin() as conn:
            node = self._find(conn, Label.DATAFLOW, str(dataflow_id))
            if node is None:
                return
            runs = [
                r
                for (r,) in self._keys(
                    conn, "SELECT src_id FROM graph_edges WHERE dst_id = :n AND type = 'OF'", n=node
                )
            ]
            ids = [node, *runs]
            conn.execute(delete(GraphEdge).where(GraphEdge.src_id.in_(ids) | GraphEdge.dst_id.in_(ids)))
            conn.execute(delete(GraphNode).where(GraphNode.id.in_(ids)))

    def upsert_tag(self, tag_id: int, name: str) -> None:
        with self.engine.begin() as conn:
            self._node(conn, Label.TAG, str(tag_id), {"name": name})

    def tag(self, dataflow_id: int, tag_id: int) -> None:
        with self.engine.begin() as conn:
            src = self._node(conn, Label.DATAFLOW, str(dataflow_id))
            dst = self._node(conn, Label.TAG, str(tag_id))
            self._edge(conn, Rel.TAGGED, src, dst)

    def tags(self, dataflow_id: int) -> list[int]:
        return self._related(dataflow_id, Rel.TAGGED, outgoing=True)

    def add_child(self, parent_id: int, child_id: int, position: int) -> None:
        with self.engine.begin() as conn:
            src = self._node(conn, Label.DATAFLOW, str(parent_id))
            dst = self._node(conn, Label.DATAFLOW, str(child_id))
            self._edge(conn, Rel.CHILD, src, dst, {"position": position})

    def children(self, dataflow_id: int) -> list[int]:
        return self._related(dataflow_id, Rel.CHILD, outgoing=True)

    def parents(self, dataflow_id: int) -> list[int]:
        return self._related(dataflow_id, Rel.CHILD, outgoing=False)

    def _related(self, dataflow_id: int, rel: Rel, *, outgoing: bool) -> list[int]:
        mine, other = ("src_id", "dst_id") if outgoing else ("dst_id", "src_id")
        sql = (
            f"SELECT o.key, e.props FROM graph_nodes n JOIN graph_edges e ON e.{mine} = n.id "
            f"JOIN graph_nodes o ON o.id = e.{other} "
            "WHERE n.label = 'DataFlow' AND n.key = :key AND e.type = :rel"
        )
        with self.engine.connect() as conn:
            rows = self._keys(conn, sql, key=str(dataflow_id), rel=rel.value)
        keyed = [(_position(props) if outgoing else 0, int(key)) for key, props in rows]
        return [key for _, key in sorted(keyed)]

    def record_run(self, run: RunRecord) -> None:
        props = {
            "status": run.status,
            "rows_read": run.rows_read,
            "rows_written": run.rows_written,
            "started_at": run.started_at,
            "ended_at": run.ended_at,
            "error": run.error,
            "dataflow_id": run.dataflow_id,
        }
        with self.engine.begin() as conn:
            flow = self._node(conn, Label.DATAFLOW, str(run.dataflow_id))
            node = self._node(conn, Label.RUN, run.run_id, props)
            self._edge(conn, Rel.OF, node, flow)
            for uri in run.reads:
                self._edge(conn, Rel.READS, flow, self._node(conn, Label.DATASET, uri))
            for uri in run.writes:
                self._edge(conn, Rel.WRITES, flow, self._node(conn, Label.DATASET, uri))

    def run(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            props = conn.scalar(
                select(GraphNode.props).where(GraphNode.label == Label.RUN.value, GraphNode.key == run_id)
            )
        return dict(props) if props is not None else None

    def lineage(self, dataflow_id: int, direction: Direction, depth: int) -> Lineage:
        result = Lineage(dataflow_id, direction, depth)
        with self.engine.connect() as conn:
            start = self._find(conn, Label.DATAFLOW, str(dataflow_id))
            if start is None:
                return result
            result.dataflows[dataflow_id] = 0
            if depth <= 0:
                return result
            cte = _UPSTREAM_CTE if direction is Direction.UPSTREAM else _DOWNSTREAM_CTE
            reached = {node: d for node, d in self._keys(conn, cte, start=start, depth=depth)}
            near = [n for n, d in reached.items() if d < depth]
            if direction is Direction.UPSTREAM:
                hop_sql = (
                    "SELECT wn.key, ds.key, rn.key, w.src_id, r.src_id FROM graph_edges r "
                    "CROSS JOIN graph_edges w CROSS JOIN graph_nodes ds CROSS JOIN graph_nodes wn "
                    "CROSS JOIN graph_nodes rn WHERE r.src_id IN ({ids}) AND r.type = 'READS' "
                )
            else:
                hop_sql = (
                    "SELECT wn.key, ds.key, rn.key, w.src_id, r.src_id FROM graph_edges w "
                    "CROSS JOIN graph_edges r CROSS JOIN graph_nodes ds CROSS JOIN graph_nodes wn "
                    "CROSS JOIN graph_nodes rn WHERE w.src_id IN ({ids}) AND w.type = 'WRITES' "
                )
            hop_sql += (
                "AND w.dst_id = r.dst_id AND w.type = 'WRITES' AND r.type = 'READS' AND ds.id = r.dst_id "
                "AND wn.id = w.src_id AND rn.id = r.src_id"
            )
            ids = ",".join(str(int(n)) for n in near)
            rows = self._keys(conn, hop_sql.format(ids=ids)) if ids else []
        keys: dict[int, int] = {}
        for writer, dataset, reader, writer_node, reader_node in rows:
            keys[writer_node], keys[reader_node] = int(writer), int(reader)
            result.hops.add(Hop(int(writer), dataset, int(reader)))
        for node, d in reached.items():
            if node in keys:
                result.dataflows[keys[node]] = min(d, result.dataflows.get(keys[node], d))
        return result


# --- Neo4j ------------------------------------------------------------------------------------------------

_CONSTRAINTS = [
    "CREATE CONSTRAINT dataflow_id IF NOT EXISTS FOR (n:DataFlow) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT tag_id IF NOT EXISTS FOR (n:Tag) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT dataset_uri IF NOT EXISTS FOR (n:Dataset) REQUIRE n.uri IS UNIQUE",
    "CREATE CONSTRAINT run_id IF NOT EXISTS FOR (n:Run) REQUIRE n.id IS UNIQUE",
]


class Neo4jGraph(GraphStore):
    """The same contract in Neo4j; lineage walks one Cypher query per hop (works on every Neo4j 5)."""

    def __init__(self, uri: str, user: str, password: str | None, database: str | None = None) -> None:
        from neo4j import GraphDatabase

        self.driver = GraphDatabase.driver(uri, auth=(user, password or ""))
        self.database = database

    def _run(self, query: str, **params: Any) -> list[Any]:
        records, _summary, _keys = self.driver.execute_query(query, params, database_=self.database)
        return list(records)

    def ensure_schema(self) -> None:
        for statement in _CONSTRAINTS:
            self._run(statement)

    def close(self) -> None:
        self.driver.close()

    def upsert_dataflow(self, dataflow_id: int, name: str) -> None:
        self._run("MERGE (d:DataFlow {id: $id}) SET d.name = $name", id=dataflow_id, name=name)

    def delete_dataflow(self, dataflow_id: int) -> None:
        self._run(
            "MATCH (d:DataFlow {id: $id}) OPTIONAL MATCH (r:Run)-[:OF]->(d) DETACH DELETE r, d",
            id=dataflow_id,
        )

    def upsert_tag(self, tag_id: int, name: str) -> None:
        self._run("MERGE (t:Tag {id: $id}) SET t.name = $name", id=tag_id, name=name)

    def tag(self, dataflow_id: int, tag_id: int) -> None:
        self._run(
            "MERGE (d:DataFlow {id: $d}) MERGE (t:Tag {id: $t}) MERGE (d)-[:TAGGED]->(t)",
            d=dataflow_id,
            t=tag_id,
        )

    def tags(self, dataflow_id: int) -> list[int]:
        rows = self._run(
            "MATCH (:DataFlow {id: $id})-[:TAGGED]->(t:Tag) RETURN t.id AS id ORDER BY id", id=dataflow_id
        )
        return [int(r["id"]) for r in rows]

    def add_child(self, parent_id: int, child_id: int, position: int) -> None:
        self._run(
            "MERGE (p:DataFlow {id: $p}) MERGE (c:DataFlow {id: $c}) "
            "MERGE (p)-[r:CHILD]->(c) SET r.position = $pos",
            p=parent_id,
            c=child_id,
            pos=position,
        )

    def children(self, dataflow_id: int) -> list[int]:
        rows = self._run(
            "MATCH (:DataFlow {id: $id})-[r:CHILD]->(c:DataFlow) RETURN c.id AS id ORDER BY r.position, c.id",
            id=dataflow_id,
        )
        return [int(r["id"]) for r in rows]

    def parents(self, dataflow_id: int) -> list[int]:
        rows = self._run(
            "MATCH (p:DataFlow)-[:CHILD]->(:DataFlow {id: $id}) RETURN p.id AS id ORDER BY id", id=dataflow_id
        )
        return [int(r["id"]) for r in rows]

    def record_run(self, run: RunRecord) -> None:
        self._run(
            "MERGE (d:DataFlow {id: $dataflow_id}) "
            "MERGE (r:Run {id: $run_id}) "
            "SET r.status = $status, r.rows_read = $rows_read, r.rows_written = $rows_written, "
            "r.started_at = $started_at, r.ended_at = $ended_at, r.error = $error, "
            "r.dataflow_id = $dataflow_id "
            "MERGE (r)-[:OF]->(d) "
            "FOREACH (uri IN $reads | MERGE (s:Dataset {uri: uri}) MERGE (d)-[:READS]->(s)) "
            "FOREACH (uri IN $writes | MERGE (s:Dataset {uri: uri}) MERGE (d)-[:WRITES]->(s))",
            run_id=run.run_id,
            dataflow_id=run.dataflow_id,
            status=run.status,
            rows_read=run.rows_read,
            rows_written=run.rows_written,
            started_at=run.started_at,
            ended_at=run.ended_at,
            error=run.error,
            reads=list(run.reads),
            writes=list(run.writes),
        )

    def run(self, run_id: str) -> dict[str, Any] | None:
        rows = self._run("MATCH (r:Run {id: $id}) RETURN properties(r) AS p", id=run_id)
        if not rows:
            return None
        props = dict(rows[0]["p"])
        props.pop("id", None)
        return props

    def lineage(self, dataflow_id: int, direction: Direction, depth: int) -> Lineage:
        result = Lineage(dataflow_id, direction, depth)
        if not self._run("MATCH (d:DataFlow {id: $id}) RETURN d.id", id=dataflow_id):
            return result
        result.dataflows[dataflow_id] = 0
        frontier = [dataflow_id]
        if direction is Direction.UPSTREAM:
            query = (
                "MATCH (r:DataFlow)-[:READS]->(s:Dataset)<-[:WRITES]-(w:DataFlow) WHERE r.id IN $ids "
                "RETURN w.id AS writer, s.uri AS dataset, r.id AS reader"
            )
        else:
            query = (
                "MATCH (w:DataFlow)-[:WRITES]->(s:Dataset)<-[:READS]-(r:DataFlow) WHERE w.id IN $ids "
                "RETURN w.id AS writer, s.uri AS dataset, r.id AS reader"
            )
        for level in range(1, depth + 1):
            if not frontier:
                break
            found: list[int] = []
            for row in self._run(query, ids=frontier):
                hop = Hop(int(row["writer"]), row["dataset"], int(row["reader"]))
                result.hops.add(hop)
                other = hop.writer if direction is Direction.UPSTREAM else hop.reader
                if other not in result.dataflows:
                    result.dataflows[other] = level
                    found.append(other)
            frontier = found
        return result


_graph: GraphStore | None = None
_graph_lock = threading.Lock()


def make_graph(
    *,
    neo4j_uri: str | None,
    neo4j_user: str = "neo4j",
    neo4j_password: str | None = None,
    engine: Engine | None = None,
) -> GraphStore:
    if neo4j_uri:
        return Neo4jGraph(neo4j_uri, neo4j_user, neo4j_password)
    if engine is None:
        from storage.metadata import get_engine

        engine = get_engine()
    return SqlGraph(engine)


def get_graph() -> GraphStore:
    """The process's graph store from settings; its schema (constraints or tables) is ensured once."""
    global _graph
    with _graph_lock:
        if _graph is None:
            from flowbridge.settings import get_settings

            settings = get_settings()
            password = settings.neo4j_password.get_secret_value() if settings.neo4j_password else None
            graph = make_graph(
                neo4j_uri=settings.neo4j_uri, neo4j_user=settings.neo4j_user, neo4j_password=password
            )
            graph.ensure_schema()
            _graph = graph
        return _graph
