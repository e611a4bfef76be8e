"""A DataFlow run's result artifacts: rows per step, lineage edges, the target."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks.result_artifacts import (
    ArtifactSpec,
    md_table,
    num,
    without_credentials,
)


def dataflow_artifacts(
    *, dataflow_id: int, name: str | None, execution_id: str | None, run_id: str, stats: Mapping[str, Any]
) -> list[ArtifactSpec]:
    """Rows per step, the lineage edges this run wrote, and where the target is.

    `stats` is what the run returns: rows_read, rows_written, reads, writes and `steps` (step, kind,
    rows_in, rows_out). The edges are the ones the run records in the graph store (storage/graph.py):
    (run)-[:OF]->(dataflow), (dataflow)-[:READS]->(dataset), (dataflow)-[:WRITES]->(dataset).
    """
    steps = [dict(s) for s in stats.get("steps") or []]
    reads = [without_credentials(str(d)) for d in stats.get("reads") or []]
    writes = [without_credentials(str(d)) for d in stats.get("writes") or []]
    node = f"dataflow:{dataflow_id}"
    edges = [{"from": f"run:{run_id}", "edge": "OF", "to": node}]
    edges += [{"from": node, "edge": "READS", "to": d} for d in reads]
    edges += [{"from": node, "edge": "WRITES", "to": d} for d in writes]
    title = f"dataflow {dataflow_id}" + (f" ({name})" if name else "")
    lines = [
        f"## {title}" + (f", execution `{execution_id}`" if execution_id else ""),
        "",
        f"Rows read: **{num(stats.get('rows_read'))}**, rows written: **{num(stats.get('rows_written'))}**",
        "",
        f"Target: {', '.join(f'`{w}`' for w in writes) or '–'}",
    ]
    if steps:
        lines += [
            "",
            "### Steps",
            "",
            md_table(
                ["step", "kind", "rows in", "rows out"],
                [
                    [s.get("step"), s.get("kind"), num(s.get("rows_in")), num(s.get("rows_out"))]
                    for s in steps
                ],
            ),
        ]
    if edges:
        lines += [
            "",
            "### Lineage written",
            "",
            *[f"- `{e['from']}` **{e['edge']}** `{e['to']}`" for e in edges],
        ]
    return [
        ArtifactSpec("table", "dataflow-steps", f"Rows read and written per step of {title}.", table=steps),
        ArtifactSpec(
            "table", "dataflow-lineage", "Lineage edges this run wrote to the graph store.", table=edges
        ),
        ArtifactSpec(
            "markdown", "dataflow-summary", f"Rows, target and lineage of {title}.", markdown="\n".join(lines)
        ),
    ]
