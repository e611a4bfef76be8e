"""MRMS domain records on a fresh SQLite metadata DB migrated by Alembic (the real migration)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from storage.mrms import repository as records
from storage.mrms.domain import (
    EarlyKey,
    EarlyType,
    LearnStatus,
    ModelingMode,
    ProjectStatus,
    Purpose,
    TimeType,
    Trainer,
    YesNo,
)
from storage.mrms.repository import EarlyStop, NotFound, RecordError


@pytest.fixture()
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from flowbridge.settings import get_settings
    from storage import metadata

    url = f"sqlite:///{tmp_path / 'meta.db'}"
    monkeypatch.setenv("FLOWBRIDGE_DATABASE_URL", url)
    get_settings.cache_clear()
    metadata.migrate()
    yield url
    get_settings.cache_clear()


def _project(project_id: str = "p1", purpose: Purpose = Purpose.CLASSIFICATION) -> None:
    records.create_project(
        records.NewProject(
            project_id=project_id,
            purpose=purpose,
            dataset_id="d1",
            status=ProjectStatus.UPLOAD_WAITING,
            start_time=None,
            modeling_mode=ModelingMode.BASIC,
            early_stop=EarlyStop(),
            tags=["a", "b"],
        )
    )


def _hist(hist_no: str, project_id: str = "p1") -> None:
    records.create_learn_hist(
        learn_hist_no=hist_no,
        project_id=project_id,
        param_id=None,
        params=None,
        alg_anal_id=None,
        alg_id="x",
        dp_analysis_id=None,
        status=LearnStatus.RUNNING,
        start_time=None,
        trainer=Trainer.EXTERNAL,
    )


def test_time_strings_round_trip_and_bad_ones_are_refused() -> None:
    parsed = records.parse_time("20211014170532")
    assert parsed == datetime(2021, 10, 14, 17, 5, 32, tzinfo=UTC)
    assert records.format_time(parsed) == "20211014170532"
    assert records.parse_time("") is None
    for bad in ("2021-10-14", "20211399000000", "abc"):
        with pytest.raises(RecordError):
            records.parse_time(bad)


def test_early_stop_param_parses_the_document_shape_and_refuses_wrong_types() -> None:
    raw = '{"early_type": "2", "early_key": "val_accuracy", "early_value": 0.9, "minsteps": 3}'
    rule = EarlyStop.parse(raw)
    assert rule == EarlyStop(EarlyType.MAX, EarlyKey.VAL_ACCURACY, 0.9, 3)
    assert EarlyStop.parse(None) == EarlyStop()
    assert EarlyStop.parse('{"early_type": "0"}').early_type is EarlyType.NONE
    for bad in (
        "not json",
        "[1]",
        '{"early_type": "4", "early_key": "loss", "early_value": 0.1, "minsteps": 1}',
        '{"early_type": "1", "early_key": "f1", "early_value": 0.1, "minsteps": 1}',
        '{"early_type": "1", "early_key": "loss", "early_value": 1.5, "minsteps": 1}',
        '{"early_type": "1", "early_key": "loss", "early_value": "x", "minsteps": 1}',
        '{"early_type": "1", "early_key": "loss", "early_value": 0.1, "minsteps": -2}',
    ):
        with pytest.raises(RecordError):
            EarlyStop.parse(bad)


def test_result_json_accepts_double_encoding_and_checks_numbers() -> None:
    assert records.parse_result('"{\\"loss\\": 0.5, \\"step\\": 2}"') == {"loss": 0.5, "step": 2}
    with pytest.raises(RecordError):
        records.parse_result('{"loss": "high"}')
    with pytest.raises(RecordError):
        records.parse_result('{"loss": 0.1, "step": "two"}')


def test_project_lifecycle_and_duplicates(database: str) -> None:
    _project()
    with pytest.raises(RecordError):
        _project()
    assert records.project_status("p1") is ProjectStatus.UPLOAD_WAITING
    records.set_project_status("p1", ProjectStatus.UPLOADED)
    assert records.project_status("p1") is ProjectStatus.UPLOADED
    with pytest.raises(NotFound):
        records.project_status("nope")
    info = records.project_info()
    assert [p["project_id"] for p in info] == ["p1"]
    assert info[0]["tag"] == "a,b" and info[0]["status"] == "3" and len(info[0]["start_time"]) == 14


def test_a_superseded_analysis_leaves_the_project_alone(database: str) -> None:
    _project()
    records.start_analysis("p1", "first")
    records.start_analysis("p1", "second")
    assert not records.finish_analysis("p1", "first", ProjectStatus.ANALYZED, profile={"rows": 1})
    assert records.project_status("p1") is ProjectStatus.ANALYSIS_REQUESTED
    assert not records.finish_analysis("p1", "second", ProjectStatus.ANALYZED)  # 5 -> 7 skips 6
    assert records.finish_analysis("p1", "second", ProjectStatus.ANALYZING)
    assert records.finish_analysis("p1", "second", ProjectStatus.ANALYZED, profile={"rows": 2})
    info = records.project_info("p1")[0]
    assert info["status"] == "7" and info["data_profile"] == {"rows": 2} and info["end_time"]


def test_a_client_status_during_analysis_wins(database: str) -> None:
    _project()
    records.start_analysis("p1", "a1")
    assert records.finish_analysis("p1", "a1", ProjectStatus.ANALYZING)
    records.set_project_status("p1", ProjectStatus.ANALYSIS_POD_DELETE)
    assert not records.finish_analysis("p1", "a1", ProjectStatus.ANALYSIS_ERROR, message="cancelled")
    assert records.project_status("p1") is ProjectStatus.ANALYSIS_POD_DELETE


def test_learning_history_records(database: str) -> None:
    _project()
    with pytest.raises(NotFound):
        _hist("h0", project_id="unknown")
    _hist("h1")
    with pytest.raises(RecordError):
        _hist("h1")
    records.update_learn_status("h1", LearnStatus.ERROR, "boom\ntrace", task_idx="3")
    assert records.learn_status("h1") is LearnStatus.ERROR
    assert records.record_result("h1", {"loss": 0.5}) == 1
    assert records.record_result("h1", {"loss": 0.4, "step": 5}) == 5
    assert records.record_result("h1", {"loss": 0.3, "step": 5}) == 5  # a repeated step replaces
    assert records.record_result("h1", {"loss": 0.2}) == 6
    assert [r["step"] for r in records.step_results("h1")] == [1, 5, 6]
    assert records.step_results("h1")[1]["loss"] == 0.3
    records.update_eps("h1", 123.5)
    records.record_resources("h1", 55.0)
    assert records.resource_samples("h1") == [
        {"eps": 123.5, "cpu_percent": None},
        {"eps": None, "cpu_percent": 55.0},
    ]
    records.update_time("h1", TimeType.END, datetime(2021, 10, 15, 17, 5, 32, tzinfo=UTC))
    model = records.models_info("p1", "h1")[0]
    assert model["end_time"] == "20211015170532" and model["task_idx"] == "3"
    assert model["eps"] == 123.5 and model["ml_result_json"] == {"loss": 0.2, "step": 6}
    assert model["message"].startswith("boom")
    with pytest.raises(NotFound):
        records.models_info("p1", "h9")


def test_batched_steps_leave_the_rows_of_three_calls_per_step(database: str) -> None:
    _project()
    _hist("h1")
    _hist("h2")
    steps = [
        records.StepRecord({"loss": 0.5 - i / 10, "accuracy": 0.6 + i / 10, "step": i}, 100.0 * i, 90.0 + i)
        for i in (1, 2, 3)
    ]
    for step in steps:  # what an external worker sends: learn_result_update, eps_update, model_resources
        records.record_result("h1", step.result)
        records.update_eps("h1", step.eps)
        records.record_resources("h1", step.cpu_percent)
    records.record_steps("h2", steps[:1])
    records.record_steps("h2", steps[1:])
    assert records.step_results("h2") == records.step_results("h1")
    assert records.resource_samples("h2") == records.resource_samples("h1")
    assert len(records.resource_samples("h2")) == 6
    one, two = (records.models_info("p1", h)[0] for h in ("h1", "h2"))
    for key in ("eps", "cpu_percent", "ml_result_json"):
        assert one[key] == two[key]
    assert two["ml_result_json"]["step"] == 3 and two["eps"] == 300.0
    with pytest.raises(NotFound):
        records.record_steps("h9", steps)


def test_begin_training_reports_status_5_and_reads_the_job_in_one_call(database: str) -> None:
    records.create_dataset(
        dataset_id="d1",
        path="datasets/d1.csv",
        file_format="csv",
        original_name="d1.csv",
        target="label",
        time_column=None,
        size_bytes=10,
        columns=["x", "label"],
    )
    _project()
    _hist("h1")
    records.update_learn_status("h1", LearnStatus.ERROR, "left over", task_idx="3")
    started = datetime(2026, 11, 23, 9, 30, 5, tzinfo=UTC)
    job = records.begin_training("h1", task_idx="0", when=started)
    assert job.hist["alg_id"] == "x" and job.hist["project_id"] == "p1"
    assert job.project["purpose"] == Purpose.CLASSIFICATION.value and job.project["dataset_id"] == "d1"
    assert job.dataset is not None and job.dataset["target"] == "label"
    model = records.models_info("p1", "h1")[0]
    assert model["learn_sttus_cd"] == LearnStatus.RUNNING.value
    assert model["task_idx"] == "0" and model["start_time"] == "20261123093005"
    assert model["message"] == records.NO_MESSAGE
    records.create_project(  # a project naming a dataset that is gone: the run fails on None, not here
        records.NewProject(
            project_id="p3",
            purpose=Purpose.CLASSIFICATION,
            dataset_id="gone",
            status=ProjectStatus.UPLOAD_WAITING,
            start_time=None,
            modeling_mode=ModelingMode.BASIC,
            early_stop=EarlyStop(),
            tags=[],
        )
    )
    _hist("h3", "p3")
    assert records.begin_training("h3", task_idx="0", when=started).dataset is None
    with pytest.raises(NotFound):
        records.begin_training("h9", task_idx="0", when=started)


def test_one_selected_model_per_project(database: str) -> None:
    _project()
    _project("p2")
    for hist_no in ("h1", "h2"):
        _hist(hist_no)
    _hist("h3", "p2")
    records.select_model("p1", "h1")
    records.select_model("p1", "h2")
    assert {m["learn_hist_no"]: m["select_yn"] for m in records.models_info("p1")} == {"h1": "N", "h2": "Y"}
    with pytest.raises(NotFound):
        records.select_model("p1", "h3")
    records.set_bookmark("h1", YesNo.YES)
    records.set_alias("h1", "best")
    model = records.models_info("p1", "h1")[0]
    assert model["bookmark_yn"] == "Y" and model["model_alias"] == "best"
    with pytest.raises(RecordError):
        records.parse_yes_no("maybe", "bookmarkYN")
    with pytest.raises(NotFound):
        records.model_file("h1")


def test_runs_lost_without_bookkeeping_are_closed_from_prefect_state(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bridge's reconciliation: a RUNNING history whose run Prefect reports Crashed (or deleted) is
    closed at 7 with the reason; running, completed-elsewhere and external histories are left alone."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from api_bridge.gateway import JobNotFound, JobState
    from api_bridge.routers.mrms import service as router

    _project()
    for hist_no in ("crashed", "running", "gone", "external"):
        _hist(hist_no)
    for hist_no in ("crashed", "running", "gone"):
        records.attach_training_run(hist_no, f"run-{hist_no}")
    ended = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    states = {
        "run-crashed": SimpleNamespace(
            state=JobState.CRASHED, state_name="Crashed", message="no heartbeat for 90 s", ended=ended
        ),
        "run-running": SimpleNamespace(
            state=JobState.RUNNING, state_name="Running", message=None, ended=None
        ),
    }

    class Gateway:
        def status(self, run_id: str) -> SimpleNamespace:
            if run_id not in states:
                raise JobNotFound(run_id)
            return states[run_id]

    monkeypatch.setattr(router, "get_gateway", Gateway)
    assert sorted(records.running_runs(project_id="p1")) == [
        ("crashed", "run-crashed"), ("gone", "run-gone"), ("running", "run-running")
    ]  # fmt: skip
    router._close_lost_runs(records.running_runs(project_id="p1"))
    assert records.learn_status("crashed") is LearnStatus.ERROR
    assert records.learn_status("gone") is LearnStatus.ERROR
    assert records.learn_status("running") is LearnStatus.RUNNING
    assert records.learn_status("external") is LearnStatus.RUNNING
    [info] = records.models_info("p1", "crashed")
    assert info["message"] == "training run Crashed: no heartbeat for 90 s"
    assert info["end_time"]
    assert records.running_runs(project_id="p1") == [("running", "run-running")]
