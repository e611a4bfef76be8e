"""DataFlow (004) records on the default configuration's SQLite (and PostgreSQL when it is there): ids
that never come back, runs that belong to one record only, ids out of the columns' range, UTC times.

The bridge's 004 router runs in-process over a migrated database; Prefect is replaced by a small fake
gateway that keeps the submitted runs and finds them by tag, as Prefect's tag filter does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api_bridge.gateway import JobState, JobStatus, LogLine

BASE = "/api/data-flow"
HUGE = "99999999999999999999999999"


def _postgres_url() -> str | None:
    try:
        from tests.support.stack import create_database

        return create_database("flowbridge_dataflow")
    except Exception:
        return None


@dataclass
class FakeGateway:
    """Prefect as the router sees it: runs with tags and parameters, newest found by tag."""

    runs: list[JobStatus] = field(default_factory=list)
    schedules: dict[str, Any] = field(default_factory=dict)

    def submit(self, job_type: str, parameters: dict[str, Any], *, tags: Any = (), **_: Any) -> uuid.UUID:
        run = JobStatus(
            run_id=uuid.uuid4(),
            state=JobState.COMPLETED,
            state_name="Completed",
            message=None,
            percent=100.0,
            stage=None,
            completed_steps=None,
            total_steps=None,
            stage_message=None,
            created=datetime.now(UTC),
            started=datetime.now(UTC),
            ended=datetime.now(UTC),
            parameters=dict(parameters),
            tags=("flowbridge", *tags),
        )
        self.runs.append(run)
        return run.run_id

    def status(self, run_id: Any, *, fresh: bool = False) -> JobStatus:
        return next(r for r in self.runs if r.run_id == run_id)

    def latest_run(self, job_type: str, tag: str, **_: Any) -> JobStatus | None:
        tagged = [r for r in self.runs if tag in r.tags]
        return tagged[-1] if tagged else None

    def log_page(self, run_id: Any, *, offset: int, limit: int, **_: Any) -> tuple[int, list[LogLine]]:
        run = self.status(run_id)
        lines = [
            LogLine(i + 1, datetime.now(UTC), "INFO", f"run {run.run_id} line {i}", "flow") for i in range(11)
        ]
        return len(lines), lines[offset : offset + limit]

    def forget(self, *_: Any) -> None:
        pass

    def set_schedule(self, job_type: str, slug: str, cron: str, parameters: dict[str, Any]) -> None:
        self.schedules[slug] = parameters

    def remove_schedule(self, job_type: str, slug: str) -> bool:
        return self.schedules.pop(slug, None) is not None


@pytest.fixture(params=["sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    from flowbridge.settings import get_settings
    from storage.dataflow import graph
    from storage.metadata import migrate

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'flowbridge.db'}"
    else:
        url = _postgres_url() or ""
        if not url:
            pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    monkeypatch.setenv("FLOWBRIDGE_DATABASE_URL", url)
    monkeypatch.delenv("FLOWBRIDGE_NEO4J_URI", raising=False)
    get_settings.cache_clear()
    monkeypatch.setattr(graph, "_graph", None)
    migrate(url)
    try:
        yield url
    finally:
        monkeypatch.setattr(graph, "_graph", None)
        get_settings.cache_clear()
        if request.param == "postgresql":
            from storage.metadata import get_engine
            from tests.support.stack import drop_database

            get_engine(url).dispose()
            drop_database(url)


@pytest.fixture()
def gateway(monkeypatch: pytest.MonkeyPatch) -> FakeGateway:
    from api_bridge.routers.dataflow import endpoints as dataflow

    fake = FakeGateway()
    monkeypatch.setattr(dataflow, "get_gateway", lambda: fake)
    return fake


@pytest.fixture()
def api(database: str, gateway: FakeGateway) -> Iterator[TestClient]:
    from api_bridge.app import create_app

    client = TestClient(create_app(), raise_server_exceptions=False)  # no lifespan: no Prefect
    yield client
    client.close()


def _add(api: TestClient, **fields: Any) -> dict[str, Any]:
    answer = api.post(f"{BASE}/add-dataflow", json={"name": uuid.uuid4().hex, "description": "d", **fields})
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


# --- ids never come back, runs belong to one record --------------------------------------------------------


def test_a_new_dataflow_never_inherits_a_deleted_ones_id_or_history(api: TestClient) -> None:
    first = _add(api)
    second = _add(api)
    assert api.post(f"{BASE}/execute-dataflow/{second['id']}", json={}).json()["code"] == 200
    assert api.get(f"{BASE}/get-dataflow-status/{second['id']}").json()["data"]["status"] == "completed"
    assert api.delete(f"{BASE}/delete-dataflow/{second['id']}").json()["code"] == 200

    newcomer = _add(api)
    assert newcomer["id"] not in {first["id"], second["id"]}  # SQLite used to give it the deleted id
    for path in ("get-dataflow-status", "get-dataflow-logs"):
        answer = api.get(f"{BASE}/{path}/{newcomer['id']}")
        assert answer.status_code == 404, answer.text
        assert answer.json()["code"] == 404 and "数据流尚未执行" in answer.json()["message"]


def test_a_record_that_gets_a_deleted_ones_id_still_sees_no_runs_of_it(
    api: TestClient, database: str, gateway: FakeGateway
) -> None:
    """However an id comes back (a restored backup, a reset sequence), runs are found by the record's
    run key, which died with the deleted record."""
    from storage.dataflow.models import DataFlow
    from storage.metadata import session_scope

    old = _add(api)
    assert api.post(f"{BASE}/execute-dataflow/{old['id']}", json={}).json()["code"] == 200
    api.delete(f"{BASE}/delete-dataflow/{old['id']}")
    now = datetime.now(UTC)
    with session_scope() as session:  # the id handed out again, as any insert would make the row
        session.add(
            DataFlow(
                id=old["id"], name="again", en_name=f"again_{old['id']}", description="", status="inactive",
                created_by="system", config=None, created_at=now, updated_at=now,
            )
        )  # fmt: skip
    assert api.get(f"{BASE}/get-dataflow/{old['id']}").json()["data"]["name"] == "again"
    for path in ("get-dataflow-status", "get-dataflow-logs"):
        assert api.get(f"{BASE}/{path}/{old['id']}").status_code == 404, path
    started = api.post(f"{BASE}/execute-dataflow/{old['id']}", json={}).json()
    assert started["code"] == 200  # the deleted one's finished run does not block it either
    run = gateway.runs[-1]
    assert run.parameters["run_key"] != gateway.runs[0].parameters["run_key"]


def test_the_run_key_goes_to_the_run_and_the_schedule(api: TestClient, gateway: FakeGateway) -> None:
    flow = _add(api, status="active", config={"schedule": "0 2 * * *"})
    from storage.dataflow.repository import get_record

    key = get_record(flow["id"]).run_key
    assert key and len(key) == 32
    assert gateway.schedules[f"dataflow-{flow['id']}"] == {"dataflow_id": flow["id"], "run_key": key}
    api.post(f"{BASE}/execute-dataflow/{flow['id']}", json={})
    run = gateway.runs[-1]
    assert run.parameters["run_key"] == key
    assert {f"dataflow:{flow['id']}", f"dataflow-run:{key}"} <= set(run.tags)


def test_tag_ids_are_never_reused(api: TestClient, database: str) -> None:
    from storage.metadata import session_scope

    first = api.post(f"{BASE}/add-tag", json={"name": uuid.uuid4().hex}).json()["data"]
    with session_scope() as session:  # tags have no delete endpoint; an operator may still delete one
        session.execute(sa.text("DELETE FROM dataflow_tags WHERE id = :id"), {"id": first["id"]})
    second = api.post(f"{BASE}/add-tag", json={"name": uuid.uuid4().hex}).json()["data"]
    assert second["id"] > first["id"]


def test_migration_rebuilds_an_existing_sqlite_database_keeping_its_rows(tmp_path: Path) -> None:
    from alembic import command

    from storage.metadata import alembic_config, make_engine

    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = alembic_config(url)
    command.upgrade(config, "0005_dataflow")
    command.upgrade(config, "heads")
    command.downgrade(config, "0005_dataflow")  # a database as the previous release left it
    engine = make_engine(url)
    row = "'n', :en, 'd', 'inactive', 'system', '{}', '2024-01-01 00:00:00', '2024-01-01 00:00:00'"
    with engine.begin() as conn:
        for i in (1, 2, 3, 4):
            conn.execute(
                sa.text(
                    "INSERT INTO dataflows (id, name, en_name, description, status, created_by, config, "
                    f"created_at, updated_at) VALUES (:id, {row})"
                ),
                {"id": i, "en": f"n_{i}"},
            )
        conn.execute(sa.text("INSERT INTO dataflow_tags (name, created_at) VALUES ('t', '2024-01-01')"))
        for executed in ("4", "3"):  # both had runs; then both were deleted
            conn.execute(
                sa.text(
                    "INSERT INTO job_runs (api, legacy_id, parent_id, job_type, flow_run_id, created_at) "
                    "VALUES ('004', :legacy, :parent, 'dataflow_run', 'x', '2024-01-01')"
                ),
                {"legacy": f"exec_{executed}", "parent": executed},
            )
        conn.execute(sa.text("DELETE FROM dataflows WHERE id >= 3"))
    command.upgrade(config, "heads")
    with engine.begin() as conn:
        kept = conn.execute(sa.text("SELECT id, en_name, run_key FROM dataflows ORDER BY id")).all()
        assert [tuple(r) for r in kept] == [(1, "n_1", None), (2, "n_2", None)]
        columns = "name, en_name, description, status, created_by, config, created_at, updated_at"
        conn.execute(sa.text(f"INSERT INTO dataflows ({columns}) VALUES ({row})"), {"en": "new"})
        new_id = conn.scalar(sa.text("SELECT id FROM dataflows WHERE en_name = 'new'"))
        tables = dict(conn.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'table'")).all())
    engine.dispose()
    assert new_id == 5  # not 3: ids that had runs never come back, even deleted before the upgrade
    assert "AUTOINCREMENT" in tables["dataflows"] and "AUTOINCREMENT" in tables["dataflow_tags"]


# --- ids beyond what the columns hold ------------------------------------------------------------------


@pytest.mark.parametrize("dataflow_id", [HUGE, str(2**63), str(2**31), "0", "-1"])
def test_ids_beyond_the_id_columns_answer_404(api: TestClient, dataflow_id: str) -> None:
    calls = [
        api.get(f"{BASE}/get-dataflow/{dataflow_id}"),
        api.get(f"{BASE}/get-dataflow-status/{dataflow_id}"),
        api.get(f"{BASE}/get-dataflow-logs/{dataflow_id}"),
        api.get(f"{BASE}/get-dataflow-lineage/{dataflow_id}"),
        api.post(f"{BASE}/execute-dataflow/{dataflow_id}", json={}),
        api.put(f"{BASE}/update-dataflow/{dataflow_id}", json={"status": "active"}),
        api.delete(f"{BASE}/delete-dataflow/{dataflow_id}"),
    ]
    for response in calls:
        assert response.status_code == 404, (response.request.url, response.text)
        assert response.json()["code"] == 404 and response.json()["message"] == "数据流不存在"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"children_ids": [int(HUGE)]}, "[99999999999999999999999999] do not exist"),
        ({"children_ids": [2**63 - 1]}, "do not exist"),
        ({"children_ids": [2**31]}, "do not exist"),
        ({"children_ids": [0, -5]}, "do not exist"),
        ({"tag_id": int(HUGE)}, "tag_id 99999999999999999999999999 does not exist"),
        ({"tag_id": HUGE}, "tag_id"),
        ({"tag_id": 2**31}, "does not exist"),
        ({"tag_id": "²"}, "tag_id must be an integer id"),
        ({"status": ["active"]}, "status must be one of"),
        ({"name": "x" * 256}, "name is longer than 255"),
        ({"created_by": "x" * 129}, "created_by is longer than 128"),
        ({"description": "a\x00b"}, "NUL"),
        ({"config": {"k": "\ud800"}}, "surrogate"),
        ({"config": {"\ud800": 1}}, "surrogate"),
        ({"created_by": "\udfff"}, "surrogate"),
    ],
)
def test_body_values_the_columns_cannot_hold_answer_400(
    api: TestClient, body: dict[str, Any], fragment: str
) -> None:
    import json

    raw = json.dumps({"name": "n", "description": "d", **body})  # a lone surrogate goes as \ud800
    response = api.post(f"{BASE}/add-dataflow", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == 400 and fragment in response.json()["message"]


def test_non_json_numbers_and_bad_query_values_answer_400(api: TestClient) -> None:
    flow = _add(api)
    checks = [
        api.post(f"{BASE}/add-dataflow", content=b'{"name": "n", "description": "d", "config": {"x": NaN}}'),
        api.post(f"{BASE}/execute-dataflow/{flow['id']}", content=b'{"params": {"x": 1e999}}'),
        api.post(f"{BASE}/execute-dataflow/{flow['id']}", content=b'{"params": {"x": "\\u0000"}}'),
        api.post(f"{BASE}/execute-dataflow/{flow['id']}", content=b'{"params": {"x": [1, {"y": 2.7e160}]}}'),
        api.post(f"{BASE}/execute-dataflow/{flow['id']}", content=b'{"params": {"x": 9223372036854775808}}'),
        api.get(f"{BASE}/get-dataflows-list", params={"page": HUGE}),
        api.get(f"{BASE}/get-dataflows-list", params={"page_size": HUGE}),
        api.get(f"{BASE}/get-dataflows-list", params={"search": "a\x00"}),
        api.get(f"{BASE}/get-dataflow-logs/{flow['id']}", params={"page": HUGE}),
        api.get(f"{BASE}/get-dataflow-lineage/{flow['id']}", params={"depth": HUGE}),
        api.put(f"{BASE}/update-dataflow/{flow['id']}", json={"name": "n" * 300}),
        api.post(f"{BASE}/add-tag", json={"name": "t" * 300}),
    ]
    for response in checks:
        assert response.status_code == 400, (response.request.url, response.text)
        assert response.json()["code"] == 400


# --- times ---------------------------------------------------------------------------------------------


def test_dataflow_and_tag_times_are_utc_aware_after_write_edit_and_read(
    api: TestClient, database: str
) -> None:
    from storage.dataflow import repository as dataflows
    from storage.dataflow.graph import get_graph

    before = datetime.now(UTC)
    flow = _add(api)
    record = dataflows.get_record(flow["id"])
    assert record.created_at.tzinfo is not None and record.created_at.utcoffset().total_seconds() == 0
    assert record.created_at >= before.replace(microsecond=0)  # comparing with aware now() works

    edited = dataflows.update(get_graph(), flow["id"], {"description": "edited"})
    assert edited.updated_at.tzinfo is not None
    again = dataflows.get_record(flow["id"])
    assert again.updated_at.utcoffset().total_seconds() == 0 and again.updated_at >= again.created_at
    assert api.get(f"{BASE}/get-dataflow/{flow['id']}").json()["data"][
        "updated_at"
    ] == again.updated_at.strftime("%Y-%m-%d %H:%M:%S")

    tag = dataflows.add_tag(get_graph(), uuid.uuid4().hex)
    from storage.dataflow.models import DataFlowTag
    from storage.metadata import session_scope

    with session_scope() as session:
        stored = session.get(DataFlowTag, tag.id)
        assert stored is not None
        stored.name = f"{stored.name}-edited"
    with session_scope() as session:
        stored = session.get(DataFlowTag, tag.id)
        assert stored is not None and stored.created_at.tzinfo is not None
        assert stored.created_at.utcoffset().total_seconds() == 0 and stored.created_at >= before.replace(
            microsecond=0
        )


def test_update_with_nulls_leaves_the_status_and_answers_200(api: TestClient) -> None:
    flow = _add(api, status="active")
    answer = api.put(f"{BASE}/update-dataflow/{flow['id']}", json={"status": None, "description": None})
    assert answer.status_code == 200, answer.text  # was a 500 IntegrityError (status is NOT NULL)
    assert (answer.json()["data"]["status"], answer.json()["data"]["description"]) == ("active", "")
    answer = api.put(f"{BASE}/update-dataflow/{flow['id']}", json={"name": None, "created_by": None})
    assert answer.status_code == 200, answer.text  # null as the schema allows: left as it is
    assert (answer.json()["data"]["name"], answer.json()["data"]["created_by"]) == (flow["name"], "system")


def test_a_config_is_kept_as_sent_even_with_nul_and_big_numbers(api: TestClient) -> None:
    import json

    config = {"note": "a\x00b", "big": 10**30, "nested": {"list": [1, "x"]}}
    body = {"name": "n", "description": "d", "config": config, "unknown": "ignored \x00 \ud800"}
    answer = api.post(f"{BASE}/add-dataflow", content=json.dumps(body))  # unused fields are not read
    assert answer.status_code == 200, answer.text
    flow = answer.json()["data"]
    assert json.loads(flow["config"]) == config
    assert json.loads(api.get(f"{BASE}/get-dataflow/{flow['id']}").json()["data"]["config"]) == config
