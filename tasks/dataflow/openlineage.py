"""OpenLineage run events for dataflow runs, for Marquez or any other OpenLineage consumer.

Sent only when FLOWBRIDGE_OPENLINEAGE_URL is set, to `<url>/api/v1/lineage` (the path of the reference
HTTP transport). The graph store stays the record of lineage; an event that cannot be delivered is logged
and never fails or slows a run for long (one attempt, short timeout).

Datasets follow OpenLineage's naming: a file is namespace `file` with its absolute path, an object store
`s3://bucket` with the key, a database `postgres://host:port` with `database.table`.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import httpx

PRODUCER = "https://github.com/flowbridge/flowbridge"
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
ERROR_FACET_URL = (
    "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
)
STATS_FACET_URL = (
    "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json"
    "#/$defs/OutputStatisticsOutputDatasetFacet"
)
NAMESPACE = "flowbridge"
ENDPOINT = "/api/v1/lineage"
_SCHEMES = {"postgresql": "postgres", "mysql+pymysql": "mysql"}

log = logging.getLogger("flowbridge.openlineage")


class EventType(StrEnum):
    START = "START"
    COMPLETE = "COMPLETE"
    FAIL = "FAIL"


def dataset(identifier: str) -> dict[str, str]:
    """An OpenLineage dataset from a graph-store dataset id (storage URL or `backend://host/db#table`)."""
    location, _, table = identifier.partition("#")
    parts = urlsplit(location)
    scheme = _SCHEMES.get(parts.scheme, parts.scheme) or "file"
    if table:
        database = parts.path.strip("/")
        name = f"{database}.{table}" if database else table
        return {"namespace": f"{scheme}://{parts.netloc}", "name": name}
    if scheme == "file":
        return {"namespace": "file", "name": parts.path or location}
    return {"namespace": f"{scheme}://{parts.netloc}", "name": parts.path.lstrip("/")}


def run_uuid(run_id: str) -> str:
    """OpenLineage wants a UUID: the flow run id, or a stable UUID for a run outside Prefect."""
    try:
        return str(uuid.UUID(run_id))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"flowbridge:{run_id}"))


def run_event(
    event_type: EventType,
    *,
    run_id: str,
    dataflow_id: int,
    reads: list[str] | tuple[str, ...] = (),
    writes: list[str] | tuple[str, ...] = (),
    rows_written: int | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    run: dict[str, Any] = {"runId": run_uuid(run_id)}
    if error:
        run["facets"] = {
            "errorMessage": {
                "_producer": PRODUCER,
                "_schemaURL": ERROR_FACET_URL,
                "message": error,
                "programmingLanguage": "python",
            }
        }
    outputs = []
    for identifier in writes:
        output: dict[str, Any] = dataset(identifier)
        if rows_written is not None:
            statistics = {"_producer": PRODUCER, "_schemaURL": STATS_FACET_URL, "rowCount": rows_written}
            output["outputFacets"] = {"outputStatistics": statistics}
        outputs.append(output)
    return {
        "eventType": str(event_type),
        "eventTime": datetime.now(UTC).isoformat(),
        "run": run,
        "job": {"namespace": NAMESPACE, "name": f"dataflow-{dataflow_id}"},
        "inputs": [dataset(identifier) for identifier in dict.fromkeys(reads)],
        "outputs": outputs,
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
    }


def emit(event: dict[str, Any], base_url: str | None, *, timeout: float = 5.0) -> bool:
    """POST one event; False (and a warning) when it could not be delivered."""
    if not base_url:
        return False
    url = base_url.rstrip("/") + ENDPOINT
    try:
        response = httpx.post(url, json=event, timeout=timeout)
        response.raise_for_status()
    except httpx.HTTPError as exc:  # the reason only: the URL may carry credentials
        failed = isinstance(exc, httpx.HTTPStatusError)
        reason = f"HTTP {exc.response.status_code}" if failed else type(exc).__name__
        job = event["job"]["name"]
        log.warning("OpenLineage %s event of %s not delivered: %s", event["eventType"], job, reason)
        return False
    return True
