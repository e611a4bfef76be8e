"""001 task records on the default backend (SQLite metadata DB migrated by Alembic), through the real
router with a fake Prefect gateway: taskIds are never given twice, a task only ever sees the run it
started, client ids outside what the column holds answer 400/404, and times come back timezone-aware."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api_bridge.gateway import JobNotFound, JobState, JobStatus, SubmitError

TOKEN = "unit-token"


@dataclass
class FakeGateway:
    """Prefect as the router sees it: runs keyed by idempotency key, as Prefect's API keys them."""

    runs: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    by_key: dict[str, UUID] = field(default_factory=dict)
    lose_next_answer: bool = False

    def submit(self, job_type: str, parameters: dict[str, Any], **kwargs: Any) -> UUID:
        key = kwargs.get("idempotency_key") or f"{kwargs['api']}:{kwargs['legacy_id']}"
        if key not in self.by_key:  # Prefect answers an existing key with the run it already has
            run_id = uuid4()
            self.by_key[key] = run_id
            self.runs[run_id] = {"parameters": parameters, "created": datetime.now(UTC)}
        if self.lose_next_answer:  # the run exists, the bridge never hears of it
            self.lose_next_answer = False
            raise SubmitError("Prefect API unavailable (read timeout)")
        return self.by_key[key]

    def status(self, run_id: UUID | str, *, fresh: bool = False) -> JobStatus:
        run = self.runs.get(UUID(str(run_id)))
        if run is None:
            raise JobNotFound(str(run_id))
        return JobStatus(
            run_id=UUID(str(run_id)),
            state=JobState.SCHEDULED,
            state_name="Scheduled",
            message=None,
            percent=0.0,
            stage=None,
            completed_steps=None,
            total_steps=None,
            stage_message=None,
            created=None,  # addTime then comes from the task's own created_at
            started=None,
            ended=None,
        )

    def store_secret(self, name: str, value: str) -> None:
        pass

    def delete_secret(self, name: str) -> bool:
        return True


@pytest.fixture()
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, FakeGateway]]:
    from api_bridge import errors
    from api_bridge.routers.offline import endpoints as offline
    from flowbridge.settings import get_settings
    from storage import metadata

    monkeypatch.setenv("FLOWBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'meta.db'}")
    monkeypatch.setenv("FLOWBRIDGE_API_TOKENS", TOKEN)
    monkeypatch.setenv("FLOWBRIDGE_OFFLINE_TIME_ZONE", "Asia/Shanghai")
    get_settings.cache_clear()
    metadata.migrate()
    gateway = FakeGateway()
    monkeypatch.setattr(offline, "get_gateway", lambda: gateway)
    app = FastAPI()
    errors.install(app)
    app.include_router(offline.router)
    with TestClient(app, headers={"Authorization": TOKEN}) as client:
        yield client, gateway
    get_settings.cache_clear()


def ceph(path_key: str, path: str) -> dict[str, Any]:
    return {
        "fileSystemType": "CEPH",
        "host": "127.0.0.1",
        "port": 9000,
        "userName": "key",
        "password": "secret",
        path_key: path,
    }


def body(output: str, **change: Any) -> dict[str, Any]:
    return {
        "algorithm": "traffic_forecast",
        "params": {},
        "email": "me@example.com",
        "inputFileSystemInfo": ceph("inputPath", "bkt-1#in/a.csv"),
        "outputFileSystemInfo": ceph("outputPath", f"bkt-1#{output}"),
        **change,
    }


def test_a_discarded_task_never_lends_its_id_or_its_run_to_the_next(
    api: tuple[TestClient, FakeGateway],
) -> None:
    client, gateway = api
    first = client.post("/api/algorithm/task/submit", json=body("out-a"))
    assert first.status_code == 200, first.text
    # the second submission reaches Prefect but its answer is lost: the bridge deletes the task row
    gateway.lose_next_answer = True
    lost = client.post("/api/algorithm/task/submit", json=body("out-b"))
    assert lost.status_code == 503 and lost.json()["error"] == "UNAVAILABLE"
    (orphan,) = [
        r for r in gateway.runs.values() if r["parameters"]["output_info"]["outputPath"] == "bkt-1#out-b"
    ]
    lost_id = orphan["parameters"]["task_id"]

    third = client.post("/api/algorithm/task/submit", json=body("out-c"))
    assert third.status_code == 200, third.text
    task_id = third.json()["taskId"]
    assert task_id not in {first.json()["taskId"], lost_id}
    assert task_id > lost_id
    # its run is the one started for it, with its own output folder — not the lost task's orphan
    from storage.metadata import session_scope
    from storage.offline.models import OfflineTask

    with session_scope() as session:
        row = session.get(OfflineTask, task_id)
        assert row is not None and row.output_info["outputPath"] == "bkt-1#out-c"
        run = gateway.runs[UUID(row.flow_run_id)]
    assert run["parameters"]["task_id"] == task_id
    assert run["parameters"]["output_info"]["outputPath"] == "bkt-1#out-c"
    answer = client.get("/api/algorithm/task/get", params={"taskId": task_id})
    assert answer.status_code == 200 and answer.json()["id"] == task_id
    gone = client.get("/api/algorithm/task/get", params={"taskId": lost_id})
    assert gone.status_code == 404 and gone.json()["error"] == "NOT_FOUND"


@pytest.mark.parametrize(
    "raw", ["2147483648", "9223372036854775807", "9223372036854775808", "9" * 30, "9" * 5000]
)
def test_a_task_id_beyond_the_column_is_not_found(api: tuple[TestClient, FakeGateway], raw: str) -> None:
    client, _ = api
    for method, path in (("GET", "/api/algorithm/task/get"), ("POST", "/api/algorithm/task/cancel")):
        response = client.request(method, path, params={"taskId": raw})
        assert response.status_code == 404, (path, response.text[:200])
        assert response.json()["error"] == "NOT_FOUND"
        assert len(response.text) < 300


@pytest.mark.parametrize("raw", ["²", "١٢", "１", "abc", "-1", "0", "000", "", " ", "1.5", "0x1", "1e3"])
def test_a_task_id_that_is_not_a_positive_integer_is_a_bad_request(
    api: tuple[TestClient, FakeGateway], raw: str
) -> None:
    client, _ = api
    for method, path in (("GET", "/api/algorithm/task/get"), ("POST", "/api/algorithm/task/cancel")):
        response = client.request(method, path, params={"taskId": raw})
        assert response.status_code == 400, (path, raw, response.text)
        assert response.json()["error"] == "BAD_REQUEST"


def test_leading_zeros_still_name_the_task(api: tuple[TestClient, FakeGateway]) -> None:
    client, _ = api
    task_id = client.post("/api/algorithm/task/submit", json=body("out")).json()["taskId"]
    response = client.get("/api/algorithm/task/get", params={"taskId": f"00{task_id}"})
    assert response.status_code == 200 and response.json()["id"] == task_id


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"email": "me\x00@example.com"}, "NUL"),
        ({"params": {"holiday_country": "D\x00E"}}, "NUL"),
        ({"params": {"no_such_parameter": 1}}, "params.no_such_parameter"),
    ],
)
def test_submit_refuses_what_no_column_or_run_can_hold(
    api: tuple[TestClient, FakeGateway], change: dict[str, Any], problem: str
) -> None:
    client, gateway = api
    response = client.post("/api/algorithm/task/submit", json=body("out", **change))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "BAD_REQUEST" and problem in response.json()["message"]
    assert not gateway.runs


def test_task_times_are_utc_aware_on_sqlite_and_answered_in_the_configured_zone(
    api: tuple[TestClient, FakeGateway],
) -> None:
    from storage.metadata import session_scope
    from storage.offline.models import OfflineTask
    from storage.offline.repository import claim_failure_notice, request_cancel

    client, _ = api
    task_id = client.post("/api/algorithm/task/submit", json=body("out")).json()["taskId"]
    seoul = timezone(timedelta(hours=9))
    created = datetime(2024, 8, 8, 16, 51, 23, tzinfo=seoul)  # 07:51:23 UTC, 15:51:23 in Shanghai
    with session_scope() as session:
        row = session.get(OfflineTask, task_id)
        assert row is not None
        assert row.created_at.tzinfo is not None and row.created_at.utcoffset() == timedelta(0)
        row.created_at = created  # an edit with another offset is stored as the same instant
    request_cancel(task_id)
    assert claim_failure_notice(task_id)
    with session_scope() as session:
        row = session.get(OfflineTask, task_id)
        assert row is not None
        assert row.created_at == created and row.created_at.tzinfo == UTC
        for when in (row.cancel_requested_at, row.notified_at):
            assert when is not None and when.tzinfo == UTC
            assert abs(datetime.now(UTC) - when) < timedelta(minutes=1)  # comparable with aware times
        cancelled_at = row.cancel_requested_at
    answer = client.get("/api/algorithm/task/get", params={"taskId": task_id}).json()
    assert answer["addTime"] == "2024-08-08 15:51:23"
    # the cancel mark alone makes the task ERROR, whatever the (fake) run still says; its finish is the mark
    assert answer["status"] == "ERROR" and answer["startTime"] is None
    assert answer["finishTime"] == cancelled_at.astimezone(timezone(timedelta(hours=8))).strftime(
        "%Y-%m-%d %H:%M:%S"
    )


def test_the_migration_rebuilds_an_existing_sqlite_table_keeping_its_tasks(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import text

    from storage.metadata import alembic_config, make_engine

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0003_offline")  # a database made before the fix
    engine = make_engine(url)
    insert = text(
        "INSERT INTO offline_tasks (algorithm, email, input_info, output_info, created_at)"
        " VALUES ('traffic_forecast', :email, '{}', '{}', '2024-08-08 07:51:23.000000')"
    )
    with engine.begin() as connection:
        for email in ("a@example.com", "b@example.com", "c@example.com"):
            connection.execute(insert, {"email": email})
    command.upgrade(alembic_config(url), "heads")
    with engine.begin() as connection:
        kept = connection.execute(text("SELECT id, email FROM offline_tasks ORDER BY id")).all()
        assert [tuple(r) for r in kept] == [(1, "a@example.com"), (2, "b@example.com"), (3, "c@example.com")]
        connection.execute(text("DELETE FROM offline_tasks WHERE id = 3"))
        connection.execute(insert, {"email": "d@example.com"})
        assert connection.execute(text("SELECT max(id) FROM offline_tasks")).scalar() == 4
    engine.dispose()
