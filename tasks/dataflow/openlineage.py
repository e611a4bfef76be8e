"""OpenLineage run events for dataflow runs, for Marquez or any other OpenLineage consumer.

Sent only when FLOWBRIDGE_OPENLINEAGE_URL is set, to `<url>/api/v1/lineage` (the path of the reference
HTTP transport). Events are built with openlineage-python's model and serializer (its schema URLs,
facet shapes and run-id check). The graph store stays the record of lineage; an event that cannot be
delivered is logged and never fails or slows a run for long (one attempt, short timeout), which is why
it is POSTed here rather than through the library's transport (its own retries and config file).

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
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import error_message_run, output_statistics_output_dataset
from openlineage.client.serde import Serde

PRODUCER = "https://github.com/flowbridge/flowbridge"
NAMESPACE = "flowbridge"
ENDPOINT = "/api/v1/lineage"
_SCHEMES = {"postgresql": "postgres", "mysql+pymysql": "mysql"}

log = logging.getLogger("flowbridge.openlineage")


class EventType(StrEnum):
    START = "START"
    COMPLETE = "COMPLETE"
    FAIL = "FAIL"


def _dataset_name(identifier: str) -> tuple[str, str]:
    """(namespace, name) of a graph-store dataset id (storage URL or `backend://host/db#table`)."""
    location, _, table = identifier.partition("#")
    parts = urlsplit(location)
    scheme = _SCHEMES.get(parts.scheme, parts.scheme) or "file"
    if table:
        database = parts.path.strip("/")
        return f"{scheme}://{parts.netloc}", f"{database}.{table}" if database else table
    if scheme == "file":
        return "file", parts.path or location
    return f"{scheme}://{parts.netloc}", parts.path.lstrip("/")


def dataset(identifier: str) -> dict[str, str]:
    """An OpenLineage dataset from a graph-store dataset id, as it goes on the wire."""
    namespace, name = _dataset_name(identifier)
    return Serde.to_dict(InputDataset(namespace=namespace, name=name, facets=None, inputFacets=None))


def run_uuid(run_id: str) -> str:
    """OpenLineage wants a UUID: the flow run id, or a stable UUID for a run outside Prefect."""
    try:
        return str(uuid.UUID(run_id))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"flowbridge:{run_id}"))


def build_run_event(
    event_type: EventType,
    *,
    run_id: str,
    dataflow_id: int,
    reads: list[str] | tuple[str, ...] = (),
    writes: list[str] | tuple[str, ...] = (),
    rows_written: int | None = None,
    error: str | None = None,
) -> RunEvent:
    """The event as openlineage-python's model (which validates the run id and the event time)."""
    facets: dict[str, Any] | None = None
    if error:
        facets = {
            "errorMessage": error_message_run.ErrorMessageRunFacet(
                message=error, programmingLanguage="python", producer=PRODUCER
            )
        }
    outputs = []
    for identifier in writes:
        namespace, name = _dataset_name(identifier)
        output_facets: dict[str, Any] | None = None
        if rows_written is not None:
            statistics = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=rows_written, producer=PRODUCER
            )
            output_facets = {"outputStatistics": statistics}
        outputs.append(OutputDataset(namespace=namespace, name=name, facets=None, outputFacets=output_facets))
    inputs = [
        InputDataset(namespace=namespace, name=name, facets=None, inputFacets=None)
        for namespace, name in map(_dataset_name, dict.fromkeys(reads))
    ]
    return RunEvent(
        eventType=RunState(str(event_type)),
        eventTime=datetime.now(UTC).isoformat(),
        run=Run(runId=run_uuid(run_id), facets=facets),
        job=Job(namespace=NAMESPACE, name=f"dataflow-{dataflow_id}", facets=None),
        inputs=inputs,
        outputs=outputs,
        producer=PRODUCER,
    )


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
    """The event as JSON-ready dict (openlineage-python's Serde: no nulls, enums as their values)."""
    event = build_run_event(
        event_type,
        run_id=run_id,
        dataflow_id=dataflow_id,
        reads=reads,
        writes=writes,
        rows_written=rows_written,
        error=error,
    )
    return Serde.to_dict(event)


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
