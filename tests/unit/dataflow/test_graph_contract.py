"""One contract for every graph store: embedded (SQLite and PostgreSQL tables) and Neo4j.

The Neo4j run happens when FLOWBRIDGE_NEO4J_URI is set (docker compose up neo4j); every test uses
fresh random ids so it can share a database with real data.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.dataflow.graph import Direction, GraphStore, Neo4jGraph, RunRecord, SqlGraph
from storage.metadata import make_engine


def _postgres_url() -> str | None:
    try:
        from tests.support.stack import create_database

        return create_database("flowbridge_graph")
    except Exception:
        return None


@pytest.fixture(params=["sqlite", "postgresql", "neo4j"])
def graph(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GraphStore]:
    kind = request.param
    if kind == "neo4j":
        uri = os.environ.get("FLOWBRIDGE_NEO4J_URI")
        if not uri:
            pytest.skip("FLOWBRIDGE_NEO4J_URI is not set (docker compose up neo4j)")
        store: GraphStore = Neo4jGraph(
            uri, os.environ.get("FLOWBRIDGE_NEO4J_USER", "neo4j"), os.environ.get("FLOWBRIDGE_NEO4J_PASSWORD")
        )
        store.ensure_schema()
        yield store
        store.close()
        return
    if kind == "sqlite":
        store = SqlGraph(make_engine(f"sqlite:///{tmp_path / 'graph.db'}"))
        store.ensure_schema()
        yield store
        return
    url = _postgres_url()
    if url is None:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    from tests.support.stack import drop_database

    engine = make_engine(url)
    store = SqlGraph(engine)
    store.ensure_schema()
    try:
        yield store
    finally:
        engine.dispose()
        drop_database(url)


@pytest.fixture()
def ids() -> list[int]:
    base = random.randint(10_000_000, 2_000_000_000)
    return [base + i for i in range(10)]


def test_upserts_are_idempotent_and_relations_read_back(graph: GraphStore, ids: list[int]) -> None:
    a, b, c, d, tag = ids[:5]
    for _ in range(2):
        graph.ensure_schema()
        for i in (a, b, c, d):
            graph.upsert_dataflow(i, f"flow {i}")
        graph.upsert_tag(tag, "ETL")
        graph.tag(a, tag)
        graph.add_child(a, c, 0)
        graph.add_child(a, b, 1)
        graph.add_child(d, b, 0)
    assert graph.tags(a) == [tag]
    assert graph.children(a) == [c, b]  # stored position, not id order
    assert graph.parents(b) == sorted([a, d])
    assert graph.descendants(a) == {b, c}
    assert graph.children(b) == []


def test_delete_removes_relations_and_runs(graph: GraphStore, ids: list[int]) -> None:
    a, b, tag = ids[:3]
    graph.upsert_dataflow(a, "a")
    graph.upsert_dataflow(b, "b")
    graph.tag(a, tag)
    graph.add_child(b, a, 0)
    graph.record_run(RunRecord(f"run-{a}", a, "completed", 3, 2, writes=(f"file:///x{a}.csv",)))
    graph.delete_dataflow(a)
    assert graph.children(b) == []
    assert graph.tags(a) == []
    assert graph.run(f"run-{a}") is None
    assert graph.lineage(a, Direction.UPSTREAM, 3).dataflows == {}
    graph.delete_dataflow(a)  # deleting twice is fine


def test_run_node_keeps_status_and_counts(graph: GraphStore, ids: list[int]) -> None:
    a = ids[0]
    run_id = f"run-{a}"
    graph.record_run(RunRecord(run_id, a, "running", started_at="2024-01-01T00:00:00"))
    graph.record_run(
        RunRecord(run_id, a, "completed", rows_read=10, rows_written=4, reads=(f"file:///in{a}",))
    )
    run = graph.run(run_id)
    assert run is not None
    assert (run["status"], run["rows_read"], run["rows_written"]) == ("completed", 10, 4)


def test_lineage_up_and_down_with_depth(graph: GraphStore, ids: list[int]) -> None:
    # chain: A writes x, B reads x writes y, C reads y writes z; D reads x too
    a, b, c, d = ids[:4]
    x, y, z = (f"file:///lineage/{ids[0]}/{n}.csv" for n in "xyz")
    graph.record_run(RunRecord(f"r{a}", a, "completed", reads=(f"file:///src{a}",), writes=(x,)))
    graph.record_run(RunRecord(f"r{b}", b, "completed", reads=(x,), writes=(y,)))
    graph.record_run(RunRecord(f"r{c}", c, "completed", reads=(y,), writes=(z,)))
    graph.record_run(RunRecord(f"r{d}", d, "completed", reads=(x,), writes=()))

    up = graph.lineage(c, Direction.UPSTREAM, 5)
    assert up.dataflows == {c: 0, b: 1, a: 2}
    assert {(h.writer, h.dataset, h.reader) for h in up.hops} == {(b, y, c), (a, x, b)}
    assert graph.lineage(c, Direction.UPSTREAM, 1).dataflows == {c: 0, b: 1}

    down = graph.lineage(a, Direction.DOWNSTREAM, 5)
    assert down.dataflows == {a: 0, b: 1, d: 1, c: 2}
    answer = down.as_dict({a: "A"})
    assert {"id": f"dataflow:{a}", "type": "DataFlow", "dataflow_id": a, "name": "A", "depth": 0} in answer[
        "nodes"
    ]
    assert {"source": f"dataflow:{a}", "target": f"dataset:{x}", "type": "WRITES"} in answer["edges"]
    assert {"source": f"dataflow:{d}", "target": f"dataset:{x}", "type": "READS"} in answer["edges"]


def test_lineage_survives_cycles(graph: GraphStore, ids: list[int]) -> None:
    a, b = ids[:2]
    p, q = f"file:///cyc/{a}/p", f"file:///cyc/{a}/q"
    graph.record_run(RunRecord(f"r{a}", a, "completed", reads=(q,), writes=(p,)))
    graph.record_run(RunRecord(f"r{b}", b, "completed", reads=(p,), writes=(q,)))
    assert graph.lineage(a, Direction.UPSTREAM, 10).dataflows == {a: 0, b: 1}
    assert graph.lineage(a, Direction.DOWNSTREAM, 10).dataflows == {a: 0, b: 1}
