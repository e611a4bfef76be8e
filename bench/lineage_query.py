"""Lineage query latency on the embedded graph store (issue 6: depth 5 over 10,000 nodes, under 50 ms).

Builds a 10,000-node lineage graph (5,000 dataflows, 5,000 datasets) in the embedded store's tables on
SQLite (the `make run` default) and, when reachable, PostgreSQL; each dataflow reads its predecessor's
dataset plus two random older ones, so upstream walks fan out. Times `lineage(id, upstream, 5)` and
`lineage(id, downstream, 5)` for 200 random dataflows. Prints a markdown table and writes
bench/results/lineage_query.md.
"""

from __future__ import annotations

import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, text  # noqa: E402

from storage.dataflow.graph import Direction, SqlGraph  # noqa: E402
from storage.dataflow.models import GraphEdge, GraphNode  # noqa: E402
from storage.metadata import make_engine  # noqa: E402

DATAFLOWS = 5_000
DEPTH = 5
QUERIES = 200
GOAL_MS = 50.0


def build(graph: SqlGraph, window: int | None, seed: int = 7) -> None:
    """Dataflow i writes dataset i and reads dataset i-1 plus two random older ones: from the previous
    `window` dataflows (pipelines feeding nearby pipelines), or from all of them (None: hub-heavy stress)."""
    rng = random.Random(seed)
    nodes = [
        {"id": i + 1, "label": "DataFlow", "key": str(i + 1), "props": {"name": f"flow {i + 1}"}}
        for i in range(DATAFLOWS)
    ]
    nodes += [
        {"id": DATAFLOWS + i + 1, "label": "Dataset", "key": f"file:///bench/{i + 1}.parquet", "props": {}}
        for i in range(DATAFLOWS)
    ]
    edges = []
    for i in range(1, DATAFLOWS + 1):
        edges.append({"type": "WRITES", "src_id": i, "dst_id": DATAFLOWS + i, "props": {}})
        reads = {i - 1} if i > 1 else set()
        low = 1 if window is None else max(1, i - window)
        reads |= {rng.randint(low, i - 1) for _ in range(2)} if i > 2 else set()
        edges += [{"type": "READS", "src_id": i, "dst_id": DATAFLOWS + r, "props": {}} for r in reads]
    with graph.engine.begin() as conn:
        conn.execute(insert(GraphNode), nodes)
        conn.execute(insert(GraphEdge), edges)
    if graph.engine.dialect.name == "postgresql":  # planner statistics, as autovacuum keeps them
        with graph.engine.begin() as conn:
            conn.execute(text("ANALYZE"))


def measure(graph: SqlGraph, direction: Direction) -> tuple[float, float, float]:
    rng = random.Random(11)
    ids = [
        rng.randint(DATAFLOWS // 2, DATAFLOWS)
        if direction is Direction.UPSTREAM
        else rng.randint(1, DATAFLOWS // 2)
        for _ in range(QUERIES)
    ]
    graph.lineage(ids[0], direction, DEPTH)  # warm the connection pool and caches
    times, sizes = [], []
    for dataflow_id in ids:
        start = time.perf_counter()
        result = graph.lineage(dataflow_id, direction, DEPTH)
        times.append((time.perf_counter() - start) * 1000)
        sizes.append(len(result.dataflows))
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], statistics.mean(sizes)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        backends = [("SQLite (embedded default)", f"sqlite:///{tmp}/graph.db", None)]
        try:
            from tests.support.stack import create_database, drop_database

            url = create_database("flowbridge_bench")
            backends.append(("PostgreSQL", url, drop_database))
        except Exception as exc:
            print(f"(PostgreSQL skipped: {type(exc).__name__})")
        for name, url, cleanup in backends:
            for shape, window in (("local (window 100)", 100), ("hubs (uniform)", None)):
                engine = make_engine(url)
                graph = SqlGraph(engine)
                graph.ensure_schema()
                with engine.begin() as conn:
                    conn.execute(text("DELETE FROM graph_edges"))
                    conn.execute(text("DELETE FROM graph_nodes"))
                build(graph, window)
                for direction in (Direction.UPSTREAM, Direction.DOWNSTREAM):
                    median, p95, size = measure(graph, direction)
                    verdict = "yes" if median < GOAL_MS else "no"
                    rows.append(
                        f"| {name} | {shape} | {direction.value} | {median:.1f} | {p95:.1f} | {size:.0f} | "
                        f"{median / GOAL_MS:.2f} | {verdict} |"
                    )
                engine.dispose()
            if cleanup:
                cleanup(url)
    table = "\n".join(
        [
            f"Lineage query, depth {DEPTH}, graph of {2 * DATAFLOWS:,} nodes ({DATAFLOWS:,} dataflows + "
            f"{DATAFLOWS:,} datasets), {QUERIES} random roots per row.",
            "",
            f"Machine: {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}.",
            "",
            "| store | graph shape | direction | median ms | p95 ms | dataflows reached (mean) "
            "| median / 50 ms goal | median under goal |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    print(table)
    out = ROOT / "bench" / "results" / "lineage_query.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# Lineage query benchmark\n\n{table}\n", encoding="utf-8")


if __name__ == "__main__":
    main()
