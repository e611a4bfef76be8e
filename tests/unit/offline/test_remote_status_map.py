"""001: every Prefect state maps onto the document's four statuses, and ERROR answers carry the reason."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from api_bridge.gateway import JobState, JobStatus
from api_bridge.routers.offline.codes import STATUS_OF, TaskStatus
from api_bridge.routers.offline.endpoints import task_answer as _answer
from api_bridge.routers.offline.service import failure_reason as _reason
from storage.offline.models import OfflineTask

CREATED = datetime(2022, 8, 8, 7, 51, 23, tzinfo=UTC)


def status(state: JobState, message: str | None = None, ended: datetime | None = None) -> JobStatus:
    return JobStatus(
        run_id=uuid4(),
        state=state,
        state_name=state.value.title(),
        message=message,
        percent=0.0,
        stage=None,
        completed_steps=None,
        total_steps=None,
        stage_message=None,
        created=CREATED,
        started=CREATED,
        ended=ended,
    )


def test_every_prefect_state_has_a_legacy_status() -> None:
    assert set(STATUS_OF) == set(JobState)
    waiting = {s for s in JobState if STATUS_OF[s] is TaskStatus.INITIALING}
    assert waiting == {JobState.SCHEDULED, JobState.PENDING}
    assert {s for s in JobState if STATUS_OF[s] is TaskStatus.FINISHED} == {JobState.COMPLETED}


def test_error_answers_name_the_reason_and_cancellation() -> None:
    failed = status(JobState.FAILED, "Flow run encountered an exception: RemoteNotFound: input path x")
    assert _reason(failed) == "failed: RemoteNotFound: input path x"
    assert _reason(status(JobState.CANCELLED, "cancelled by the client")) == "cancelled by the client"
    assert _reason(status(JobState.CANCELLING, "cancelled by the client")).startswith("cancelled")
    assert _reason(status(JobState.CRASHED, None)).lower() == "crashed"


def test_answer_shape_and_times(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from flowbridge.settings import get_settings

    monkeypatch.setenv("FLOWBRIDGE_OFFLINE_TIME_ZONE", "Asia/Shanghai")
    get_settings.cache_clear()
    row = OfflineTask(id=7, algorithm="traffic_forecast", email="a@b.cn", input_info={}, output_info={})
    done = _answer(row, status(JobState.COMPLETED, ended=CREATED))
    assert done == {
        "id": 7,
        "status": "FINISHED",
        "addTime": "2022-08-08 15:51:23",
        "startTime": "2022-08-08 15:51:23",
        "finishTime": "2022-08-08 15:51:23",
    }
    stopping = _answer(row, status(JobState.CANCELLING, "cancelled by the client"))
    assert stopping["status"] == "ERROR" and stopping["finishTime"] is None
    assert "cancelled" in stopping["message"]
    get_settings.cache_clear()
