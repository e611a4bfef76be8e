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
from api_bridge.gateway import JobNotFound, JobState, JobStatus
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

    def delete(self, run_id: Any) -> int:
        self.runs.pop(str(run_id), None)
        return 0

    def forget(self, api: str, legacy_id: str) -> None:
        pass

    def result_summary(self, run_id: Any) -> dict[str, Any] | None:
        return None

    def result_files(self, run_id: Any) -> list[Any]:
        return []


@pytest.fixture()
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, FakeGateway]]:
    from api_bridge.routers.gasflux import endpoints as gasflux
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


def _declared(app_openapi: dict[str, Any], path: str, method: str, code: int) -> dict[str, Any]:
    responses = app_openapi["paths"][path][method]["responses"]
    schema = responses[str(code)]["content"]["application/json"]["schema"]
    return {**schema, "components": app_openapi["components"]}


def test_answers_match_their_declared_response_models(client: tuple[TestClient, Any]) -> None:
    """Every answer of a task's life validates against the schema /openapi.json declares for its status."""
    from jsonschema import Draft202012Validator

    http, _ = client
    spec = http.get("/openapi.json").json()

    def check(response: Any, path: str, method: str) -> dict[str, Any]:
        schema = _declared(spec, path, method, response.status_code)
        errors = sorted(Draft202012Validator(schema).iter_errors(response.json()), key=str)
        assert not errors, f"{method.upper()} {path} {response.status_code}: {errors[0].message}"
        return response.json()

    files = {"file": ("flight.xlsx", b"x", "application/octet-stream")}
    job_id = check(http.post("/upload", files=files), "/upload", "post")["job_id"]
    check(http.post("/upload", files={"file": ("flight.csv", b"x")}), "/upload", "post")
    task = "/task/{task_id}"
    check(http.get(f"/task/{job_id}"), task, "get")
    check(http.get(f"/task/{uuid.uuid4()}"), task, "get")
    check(http.put(f"/task/{job_id}", json={"message": "m", "priority": "low"}), task, "put")
    check(http.put(f"/task/{job_id}", json={"priority": 3}), task, "put")
    check(http.delete(f"/task/{job_id}"), task, "delete")  # 409: still pending
    check(http.put(f"/task/{job_id}", json={"status": "failed"}), task, "put")
    check(http.get(f"/task/{job_id}"), task, "get")
    check(http.get("/reports", params={"status": "failed"}), "/reports", "get")
    check(http.get("/reports", params={"per_page": 0}), "/reports", "get")
    check(http.get("/stats"), "/stats", "get")
    check(http.post("/stats/reset"), "/stats/reset", "post")
    check(http.get("/config"), "/config", "get")
    check(http.get("/health"), "/health", "get")
    check(http.get(f"/download/{job_id}/nothing.csv"), "/download/{filename}", "get")
    assert check(http.delete(f"/task/{job_id}"), task, "delete")["status"] == "deleted"


def test_inputs_past_the_parser_or_the_ranges_are_400_not_500(client: tuple[TestClient, Any]) -> None:
    """JSON (PUT /task, /upload) or a YAML config nested past the parser's recursion limit raised
    RecursionError (500); a page past what /reports declares was answered; a NUL in the message is
    refused before it reaches PostgreSQL (ours or Prefect's)."""
    http, _ = client
    job_id = http.post("/upload", files={"file": ("flight.xlsx", b"x")}).json()["job_id"]
    deep = {"content": b"[" * 50_000, "headers": {"Content-Type": "application/json"}}
    nested = http.put(f"/task/{job_id}", **deep)
    assert (nested.status_code, nested.json()["message"]) == (400, "请求体必须是 JSON 格式")
    upload = http.post("/upload", **deep)
    assert (
        upload.status_code == 400
        and upload.json()["message"] == "无效的请求: malformed request body: JSON nested too deeply"
    )
    yaml = {"file": ("flight.xlsx", b"x"), "config": ("config.yaml", b"gases: " + b"[" * 5000)}
    config = http.post("/upload", files=yaml)
    assert config.status_code == 400 and config.json()["message"].endswith("nested too deeply")
    page = http.get("/reports", params={"page": 2**31})
    assert page.status_code == 400
    assert page.json()["message"] == "Invalid parameter: page must be 2147483647 or less"
    assert http.get("/reports", params={"page": 2**31 - 1}).status_code == 200
    nul = http.put(f"/task/{job_id}", json={"message": "a\x00b"})
    assert nul.status_code == 400 and nul.json()["data"] == {}
    assert http.get(f"/task/{job_id}").json()["data"]["message"] == "任务已排队,等待处理"
