"""003 MRMS over its router on the default backend (SQLite metadata DB migrated by Alembic): whatever a
client sends answers the document's HTTP 200 "error" when no column can hold it, never an exception;
times are stored timezone-aware UTC and answered as YYYYmmddHHMMSS UTC; a history sees only its own run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient


class FakeGateway:
    """Prefect as the router sees it: runs keyed by idempotency key, as Prefect's API keys them."""

    def __init__(self) -> None:
        self.by_key: dict[str, UUID] = {}
        self.parameters: dict[UUID, dict[str, Any]] = {}

    def submit(self, job_type: str, parameters: dict[str, Any], **kwargs: Any) -> UUID:
        key = kwargs.get("idempotency_key") or f"{kwargs['api']}:{kwargs['legacy_id']}"
        if key not in self.by_key:
            self.by_key[key] = uuid4()
            self.parameters[self.by_key[key]] = parameters
        return self.by_key[key]

    def status(self, run_id: UUID | str, *, fresh: bool = False) -> Any:
        from api_bridge.gateway import JobState, JobStatus

        assert UUID(str(run_id)) in self.parameters
        return JobStatus(
            UUID(str(run_id)),
            JobState.RUNNING,
            "Running",
            None,
            0.5,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        )

    def logs(self, run_id: UUID | str, *, offset: int = 0, limit: int = 200) -> list[Any]:
        from api_bridge.gateway import LogLine

        line = LogLine(0, datetime(2024, 8, 8, tzinfo=UTC), "INFO", f"training in run {run_id}", "flow")
        return [line][offset:limit]


@pytest.fixture()
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from api_bridge import errors
    from api_bridge.routers.mrms import endpoints as mrms
    from flowbridge.settings import get_settings
    from storage import metadata

    monkeypatch.setenv("FLOWBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'meta.db'}")
    get_settings.cache_clear()
    metadata.migrate()
    gateway = FakeGateway()
    monkeypatch.setattr(mrms, "get_gateway", lambda: gateway)
    app = FastAPI()
    errors.install(app)
    app.include_router(mrms.router)
    with TestClient(app) as test_client:  # an exception in the app fails the test (raise_server_exceptions)
        test_client.gateway = gateway  # type: ignore[attr-defined]
        yield test_client
    get_settings.cache_clear()


def post(client: TestClient, path: str, **fields: Any) -> str:
    response = client.post(f"/mrms/{path}", data=fields)
    assert response.status_code == 200, response.text
    return response.text


def get(client: TestClient, path: str, **fields: Any) -> Any:
    response = client.get(f"/mrms/{path}", params=fields)
    assert response.status_code == 200, response.text
    return (
        response.json() if response.headers["content-type"].startswith("application/json") else response.text
    )


def project_and_hist(client: TestClient) -> None:
    assert post(client, "project_create", project_id="p1", project_purpose_cd="1", status="3") == "1"
    assert post(client, "insert_learn_hist", learn_hist_no="h1", project_id="p1", external="Y") == "1"


@pytest.mark.parametrize(
    "result",
    [
        {"step": 99999999999999999999},  # beyond SQLite's 64 bits: OverflowError
        {"step": 2**31},  # beyond PostgreSQL's INTEGER
        {"step": "²"},  # str.isdigit() says yes, int() says no
        {"step": "9" * 5000},  # int() refuses more than 4300 digits
        {"step": -1},
        {"step": 1.5},
    ],
)
def test_a_step_no_column_holds_is_an_error(client: TestClient, result: dict[str, Any]) -> None:
    project_and_hist(client)
    assert post(client, "learn_result_update", hist_no="h1", result=json.dumps(result)) == "error"
    assert get(client, "get_models_info", project_id="p1")[0]["ml_result_json"] is None


def test_the_last_step_a_column_holds_is_the_last_one(client: TestClient) -> None:
    project_and_hist(client)
    last = json.dumps({"step": 2**31 - 1, "loss": 0.5})
    assert post(client, "learn_result_update", hist_no="h1", result=last) == "1"
    assert post(client, "learn_result_update", hist_no="h1", result=json.dumps({"loss": 0.4})) == "error"


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("learn_result_update", {"hist_no": "h1", "result": '{"loss": ' + "9" * 5000 + "}"}),
        ("learn_result_update", {"hist_no": "h1", "result": '{"loss": 0.1, "extra": NaN}'}),
        ("learn_result_update", {"hist_no": "h1", "result": "[" * 100_000 + "]" * 100_000}),
        ("param_set", {"alg_id": "sgd_classifier", "params": '{"steps": 1e400}'}),
        ("param_set", {"params": '{"alpha": Infinity}'}),
        (
            "project_create",
            {
                "project_id": "p2",
                "project_purpose_cd": "1",
                "status": "3",
                "early_stop_param": '{"early_type": "1", "early_key": "loss", '
                '"early_value": 0.1, "minsteps": "²"}',
            },
        ),
        (
            "project_create",
            {
                "project_id": "p2",
                "project_purpose_cd": "1",
                "status": "3",
                "early_stop_param": '{"early_type": "1", "early_key": "loss", '
                '"early_value": 0.1, "minsteps": 99999999999}',
            },
        ),
        ("project_create", {"project_id": "p\x00", "project_purpose_cd": "1", "status": "3"}),
        (
            "project_create",
            {"project_id": "p2", "project_purpose_cd": "1", "status": "3", "dataset_id": "d" * 65},
        ),
        (
            "insert_learn_hist",
            {"learn_hist_no": "h2", "project_id": "p1", "external": "Y", "alg_id": "a" * 65},
        ),
        (
            "insert_learn_hist",
            {"learn_hist_no": "h2", "project_id": "p1", "external": "Y", "param_id": "x" * 65},
        ),
        (
            "insert_learn_hist",
            {
                "learn_hist_no": "h2",
                "project_id": "p1",
                "external": "Y",
                "param_id": json.dumps({"a": "x" * 60}),
            },
        ),
        ("status_update/learn", {"hist_no": "h1", "sttus_cd": "6", "task_idx": "9" * 33}),
        ("model_alias_update", {"hist_no": "h1", "model_alias": "a\x00b"}),
        ("get_sttus_cd", {"hist_no": "h\x00"}),
    ],
)
def test_values_no_column_can_hold_answer_error(
    client: TestClient, path: str, fields: dict[str, str]
) -> None:
    project_and_hist(client)
    assert post(client, path, **fields) == "error"
    assert len(get(client, "get_projects_info")) == 1  # nothing was created
    assert get(client, "get_histno_status", project_id="p1") == [
        {"learn_hist_no": "h1", "learn_sttus_cd": "5"}
    ]


def test_a_json_body_too_deep_or_with_huge_numbers_answers_error(client: TestClient) -> None:
    for raw in ("[" * 100_000 + "]" * 100_000, '{"hist_no": ' + "1" * 5000 + "}"):
        response = client.post(
            "/mrms/get_sttus_cd", content=raw, headers={"content-type": "application/json"}
        )
        assert (response.status_code, response.text) == (200, "error")


def test_history_times_are_utc_aware_on_sqlite_and_answered_as_utc_strings(client: TestClient) -> None:
    from storage.metadata import session_scope
    from storage.mrms.models import MrmsLearnHist, MrmsProject

    assert (
        post(
            client,
            "project_create",
            project_id="p1",
            project_purpose_cd="1",
            status="3",
            start_time="20240808075123",
        )
        == "1"
    )
    assert (
        post(
            client,
            "insert_learn_hist",
            learn_hist_no="h1",
            project_id="p1",
            external="Y",
            start_time="20240808075124",
        )
        == "1"
    )
    assert post(client, "time_update", hist_no="h1", type="end", curr_time="20240808093000") == "1"
    with session_scope() as session:
        hist = session.get(MrmsLearnHist, "h1")
        project = session.get(MrmsProject, "p1")
        assert hist is not None and project is not None
        assert (
            hist.start_time == datetime(2024, 8, 8, 7, 51, 24, tzinfo=UTC) and hist.start_time.tzinfo == UTC
        )
        assert hist.end_time == datetime(2024, 8, 8, 9, 30, tzinfo=UTC) and hist.end_time.tzinfo == UTC
        assert project.start_time == datetime(2024, 8, 8, 7, 51, 23, tzinfo=UTC)
        hist.end_time = datetime(2024, 8, 8, 19, 0, tzinfo=timezone(timedelta(hours=9)))  # 10:00 UTC
    assert post(client, "time_update", hist_no="h1", type="start", curr_time="20240808080000") == "1"
    model = get(client, "get_models_info", project_id="p1", hist_no="h1")[0]
    assert (model["start_time"], model["end_time"]) == ("20240808080000", "20240808100000")
    assert get(client, "get_projects_info", project_id="p1")[0]["start_time"] == "20240808075123"
    with session_scope() as session:
        hist = session.get(MrmsLearnHist, "h1")
        assert hist is not None and hist.end_time is not None and hist.end_time.tzinfo == UTC
        assert hist.end_time < datetime.now(UTC) and hist.created_at < datetime.now(UTC)


def test_a_history_gets_a_run_of_its_own_even_under_a_number_prefect_saw_before(client: TestClient) -> None:
    """A metadata DB reset while Prefect kept its runs: the key 003:<hist_no> used to hand the new history
    the old history's run (and with it its state, logs and model)."""
    from storage import metadata
    from storage.metadata import session_scope
    from storage.mrms.models import MrmsLearnHist

    gateway = client.gateway  # type: ignore[attr-defined]
    assert post(client, "project_create", project_id="p1", project_purpose_cd="1", status="3") == "1"
    assert post(client, "insert_learn_hist", learn_hist_no="h1", project_id="p1", alg_id="gaussian_nb") == "1"
    with session_scope() as session:
        first_run = session.get(MrmsLearnHist, "h1").flow_run_id  # type: ignore[union-attr]
    metadata.get_engine().dispose()
    Path(metadata.get_engine().url.database).unlink()  # type: ignore[arg-type]
    metadata.migrate()
    assert post(client, "project_create", project_id="p1", project_purpose_cd="1", status="3") == "1"
    assert post(client, "insert_learn_hist", learn_hist_no="h1", project_id="p1", alg_id="gaussian_nb") == "1"
    with session_scope() as session:
        second_run = session.get(MrmsLearnHist, "h1").flow_run_id  # type: ignore[union-attr]
    assert first_run and second_run and first_run != second_run
    assert len(gateway.parameters) == 2
    assert post(client, "get_sttus_cd", hist_no="h1") == "5"
    logs = get(client, "get_learn_logs", hist_no="h1")
    assert logs == {"0": f"2024-08-08 00:00:00 INFO training in run {second_run}"}


def test_the_migration_rebuilds_existing_sqlite_tables_keeping_their_rows(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import BigInteger, inspect, text

    from storage.metadata import alembic_config, make_engine

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0004_mrms")  # a database made before the fix
    engine = make_engine(url)
    now = "2024-08-08 07:51:23.000000"

    def insert(connection: Any, table: str, **values: Any) -> None:
        names = ", ".join(values)
        connection.execute(text(f"INSERT INTO {table} ({names}) VALUES (:{', :'.join(values)})"), values)

    def step_and_sample(connection: Any, step: int) -> None:
        insert(connection, "mrms_step_results", learn_hist_no="h1", step=step, result="{}", recorded_at=now)
        insert(connection, "mrms_resource_samples", learn_hist_no="h1", eps=1.0, recorded_at=now)

    with engine.begin() as connection:
        project = {"project_purpose_cd": "1", "status": "3", "modeling_mode": "1", "tags": "[]"}
        insert(connection, "mrms_projects", project_id="p1", created_at=now, **project)
        flags = {"stopped_early": 0, "bookmark_yn": "N", "select_yn": "N"}
        hist = {"learn_sttus_cd": "5", "trainer": "external", **flags}
        insert(connection, "mrms_learn_hists", learn_hist_no="h1", project_id="p1", created_at=now, **hist)
        step_and_sample(connection, 1)
        step_and_sample(connection, 2)
    command.upgrade(alembic_config(url), "heads")
    tables = ("mrms_step_results", "mrms_resource_samples")
    with engine.begin() as connection:
        for table in tables:
            assert connection.execute(text(f"SELECT id FROM {table} ORDER BY id")).scalars().all() == [1, 2]
            connection.execute(text(f"DELETE FROM {table} WHERE id = 2"))
        step_and_sample(connection, 3)
        for table in tables:
            assert connection.execute(text(f"SELECT max(id) FROM {table}")).scalar() == 3
        assert connection.execute(text("SELECT count(*) FROM mrms_learn_hists")).scalar() == 1
        # a dataset over 2 GiB (an upload limit may be set that high): BIGINT, as on PostgreSQL
        insert(
            connection,
            "mrms_datasets",
            dataset_id="d1",
            path="p",
            file_format="csv",
            original_name="d.csv",
            target="t",
            size_bytes=3 * 2**30,
            columns="[]",
            created_at=now,
        )
    size = next(c for c in inspect(engine).get_columns("mrms_datasets") if c["name"] == "size_bytes")
    assert isinstance(size["type"], BigInteger)
    engine.dispose()


def test_a_run_never_writes_into_a_history_attached_to_another_run(client: TestClient) -> None:
    """A run Prefect kept from a history lost with its metadata DB must leave the new history of the same
    number alone: start, steps, model, end state and its crash hook all refuse or skip it."""
    from storage.mrms import repository as records
    from storage.mrms.domain import LearnStatus, TimeType

    project_and_hist(client)
    records.attach_training_run("h1", "run-new")
    now = datetime.now(UTC)
    step = records.StepRecord({"loss": 0.5, "step": 1}, 1.0, 2.0)
    refused = [
        lambda: records.begin_training("h1", task_idx="0", when=now, run_id="run-old"),
        lambda: records.record_steps("h1", [step], run_id="run-old"),
        lambda: records.finish_training(
            "h1",
            model_path="runs/run-old/model.skops",
            model_sha256="0" * 64,
            stopped_early=False,
            run_id="run-old",
        ),
        lambda: records.update_learn_status_and_time(
            "h1", LearnStatus.DONE, "-", task_idx="0", kind=TimeType.END, when=now, run_id="run-old"
        ),
    ]
    for call in refused:
        with pytest.raises(records.ForeignRun):
            call()
    records.close_lost_run("h1", "Crashed", "old run", now, run_id="run-old")
    model = get(client, "get_models_info", project_id="p1")[0]
    assert model["learn_sttus_cd"] == "5" and model["ml_result_json"] is None and not model["model_file"]
    assert model["task_idx"] == "" and model["end_time"] == ""
    # its own run (and a run that starts before the bridge attached it) writes as before
    records.begin_training("h1", task_idx="0", when=now, run_id="run-new")
    records.record_steps("h1", [step], run_id="run-new")
    records.close_lost_run("h1", "Crashed", "its own run", now, run_id="run-new")
    assert get(client, "get_models_info", project_id="p1")[0]["learn_sttus_cd"] == "7"
    assert post(client, "insert_learn_hist", learn_hist_no="h2", project_id="p1", external="Y") == "1"
    records.begin_training("h2", task_idx="0", when=now, run_id="run-first")
