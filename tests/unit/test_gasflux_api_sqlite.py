"""The 002 router on the default configuration's SQLite metadata DB (what `make run` uses), Prefect faked.

The shared e2e stack keeps its metadata on PostgreSQL, which hands back timezone-aware datetimes; SQLite
hands back whatever was stored, so a column that came back naive made GET /task compare it with Prefect's
aware times and answer 500 after any PUT /task with a message, and GET /stats 500 for everyone after it.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api_bridge import errors
from api_bridge.jobs import JobNotFound, JobState, JobStatus
from flowbridge.settings import get_settings

FINAL = {JobState.COMPLETED, JobState.FAILED, JobState.CRASHED, JobState.CANCELLED}


class FakeGateway:
    """The JobGateway calls the GasFlux router makes, on flow runs kept in memory (aware datetimes, as
    Prefect gives them)."""

    def __init__(self) -> None:
        self.runs: dict[str, JobStatus] = {}

    def submit(self, job_type: str, params: dict[str, Any], **_: Any) -> uuid.UUID:
        run_id = uuid.uuid4()
        self.runs[str(run_id)] = JobStatus(
            run_id=run_id, state=JobState.SCHEDULED, state_name="Scheduled", message=None, percent=0.0,
            stage=None, completed_steps=None, total_steps=None, stage_message=None,
            created=datetime.now(UTC), started=None, ended=None, parameters=params,
        )  # fmt: skip
        return run_id

    def status(self, run_id: Any, *, fresh: bool = False) -> JobStatus:
        if str(run_id) not in self.runs:
            raise JobNotFound(str(run_id))
        return self.runs[str(run_id)]

    def peek_status(self, run_id: Any) -> JobStatus | None:
        return None  # never answer from memory: every GET reads the row back from the database

    def statuses(self, run_ids: list[Any]) -> dict[uuid.UUID, JobStatus]:
        return {uuid.UUID(str(r)): self.runs[str(r)] for r in run_ids if str(r) in self.runs}

    def set_state(self, run_id: Any, state: JobState, message: str | None = None) -> JobStatus:
        now = datetime.now(UTC)
        current = self.status(run_id)
        self.runs[str(run_id)] = dataclasses.replace(
            current, state=state, state_name=state.value.title(), message=message,
            started=current.started or now, ended=now if state in FINAL else None,
        )  # fmt: skip
        return self.runs[str(run_id)]

    def set_tags(self, run_id: Any, tags: list[str]) -> None:
        self.runs[str(run_id)] = dataclasses.replace(self.status(run_id), tags=tuple(tags))

    def result_summary(self, run_id: Any) -> dict[str, Any] | None:
        return None

    def result_files(self, run_id: Any) -> list[Any]:
        return []


@pytest.fixture()
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, FakeGateway]]:
    from api_bridge.routers import gasflux
    from storage import metadata

    monkeypatch.setenv("FLOWBRIDGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FLOWBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'meta.db'}")
    monkeypatch.delenv("FLOWBRIDGE_STORAGE_URL", raising=False)
    get_settings.cache_clear()
    metadata.migrate()
    gateway = FakeGateway()
    monkeypatch.setattr(gasflux, "get_gateway", lambda: gateway)
    monkeypatch.setattr(gasflux, "_limiter", None)  # bound to the previous test's event loop otherwise
    monkeypatch.setattr(gasflux, "MONITOR", gasflux.Monitor(gasflux._take_census, gasflux._probe_storage))
    app = FastAPI()
    errors.install(app)
    app.include_router(gasflux.router)
    with TestClient(app) as test_client:
        yield test_client, gateway
    get_settings.cache_clear()


def test_edited_task_reads_back_and_the_census_stays_up_on_sqlite(client: tuple[TestClient, Any]) -> None:
    http, gateway = client
    assert get_settings().effective_database_url.startswith("sqlite")
    started = time.time()
    upload = http.post(
        "/upload", files={"file": ("flight.xlsx", b"not parsed here", "application/octet-stream")}
    )
    assert upload.status_code == 202, upload.text
    job_id = upload.json()["job_id"]

    edit = http.put(f"/task/{job_id}", json={"message": "checked by hand"})
    assert edit.status_code == 200, edit.text
    task = http.get(f"/task/{job_id}")
    assert task.status_code == 200, task.text
    data = task.json()["data"]
    assert data["message"] == "checked by hand"
    assert started - 1 <= data["created_at"] <= data["updated_at"] <= time.time() + 1

    edit = http.put(f"/task/{job_id}", json={"status": "failed", "message": "bad flight"})
    assert edit.status_code == 200, edit.text
    edit = http.put(f"/task/{job_id}", json={"priority": "high"})
    assert edit.status_code == 200, edit.text
    task = http.get(f"/task/{job_id}").json()["data"]
    assert (task["status"], task["priority"], task["message"]) == ("failed", "high", "bad flight")
    assert gateway.runs[next(iter(gateway.runs))].tags == ("priority:high",)

    stats = http.get("/stats")
    assert stats.status_code == 200, stats.text
    tasks = stats.json()["tasks"]
    assert (tasks["total_created"], tasks["total_failed"]) == (1, 1)
    [recent] = stats.json()["recent_tasks"]
    assert recent["task_id"] == job_id and recent["message"] == "bad flight"
    assert 0 <= recent["age_seconds"] <= time.time() - started + 1
    reports = http.get("/reports")
    assert reports.status_code == 200, reports.text
    assert [r["task_id"] for r in reports.json()["reports"]] == [job_id]
