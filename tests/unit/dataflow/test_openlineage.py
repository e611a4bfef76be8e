"""OpenLineage events: the wire shape a consumer (Marquez) accepts, dataset naming, delivery and failure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.dataflow.openlineage import EventType, dataset, emit, run_event, run_uuid
from tests.support.openlineage import LineageCollector, received


@pytest.fixture()
def consumer(tmp_path: Path) -> Iterator[LineageCollector]:
    collector = LineageCollector(tmp_path / "events").start()
    yield collector
    collector.stop()


def test_dataset_names_follow_the_openlineage_naming_spec() -> None:
    assert dataset("file:///data/in.csv") == {"namespace": "file", "name": "/data/in.csv"}
    assert dataset("s3://lake/sales/2026.parquet") == {"namespace": "s3://lake", "name": "sales/2026.parquet"}
    assert dataset("postgresql://db.example:5432/shop#public.orders") == {
        "namespace": "postgres://db.example:5432",
        "name": "shop.public.orders",
    }
    assert dataset("sqlite:///tmp/x.db#t")["name"] == "tmp/x.db.t"


def test_run_ids_are_uuids() -> None:
    prefect_id = "0b5d3f0e-8c1b-4d57-9f0e-6f6a2d1f9c11"
    assert run_uuid(prefect_id) == prefect_id
    assert run_uuid("local-7") == run_uuid("local-7") != run_uuid("local-8")


def test_complete_and_fail_events_are_delivered_with_inputs_outputs_and_facets(
    consumer: LineageCollector,
) -> None:
    done = run_event(
        EventType.COMPLETE,
        run_id="local-3",
        dataflow_id=3,
        reads=["file:///in.csv", "file:///in.csv"],
        writes=["postgresql://h:5432/db#sales"],
        rows_written=42,
    )
    failed = run_event(EventType.FAIL, run_id="local-3", dataflow_id=3, error="column 'amount' is missing")
    assert emit(done, consumer.url) and emit(failed, consumer.url + "/")
    first, second = received(consumer.folder)
    assert first["eventType"] == "COMPLETE"
    assert first["job"] == {"namespace": "flowbridge", "name": "dataflow-3"}
    assert first["inputs"] == [{"namespace": "file", "name": "/in.csv"}]
    assert first["outputs"][0]["name"] == "db.sales"
    assert first["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 42
    assert first["run"]["runId"] == second["run"]["runId"]
    assert second["run"]["facets"]["errorMessage"]["message"] == "column 'amount' is missing"
    for event in (first, second):
        assert {"eventTime", "producer", "schemaURL"} <= set(event)


def test_an_unreachable_or_refusing_consumer_is_reported_not_raised(
    consumer: LineageCollector, caplog: pytest.LogCaptureFixture
) -> None:
    event = run_event(EventType.START, run_id="local-1", dataflow_id=1)
    consumer.status = 500
    assert emit(event, consumer.url) is False
    assert emit(event, "http://user:secret@127.0.0.1:9", timeout=1) is False
    assert emit(event, None) is False
    assert "HTTP 500" in caplog.text and "secret" not in caplog.text
    assert received(consumer.folder) == []
