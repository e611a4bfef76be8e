"""The progress artifact's description carries stage and steps that the bridge reads back."""

from __future__ import annotations

import time

import pytest

from tasks.progress import Progress, ProgressDetail, decode_description, encode_description


def test_detail_round_trips_through_the_description() -> None:
    detail = ProgressDetail(62.5, "spatial_interpolation", 3, 5, "kriging CH4 — 网格")
    text = encode_description(detail)
    assert "**spatial_interpolation** (3/5)" in text
    assert decode_description(62.5, text) == detail


def test_percent_is_monotonic_and_capped_until_finish() -> None:
    progress = Progress(["a", "b", "c", "d"])
    assert not progress.remote
    progress.stage("b")
    assert progress.detail.percent == 25.0
    progress.advance(0.5)
    assert progress.detail.percent == 37.5
    progress.advance(0.2)  # a smaller fraction never moves it back
    assert progress.detail.percent == 37.5
    progress.stage("d")
    progress.advance(1.0)
    assert progress.detail.percent == 99.0
    progress.finish()
    assert progress.detail.percent == 100.0


def test_description_without_detail_decodes_to_percent_only() -> None:
    assert decode_description(12.0, "free text") == ProgressDetail(12.0)


class SlowApi:
    """Stands in for Prefect's artifact API: records each call, and each call takes a round trip's time."""

    def __init__(self, delay: float = 0.08, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.calls: list[tuple[str, float, str | None]] = []

    def create(self, *, progress: float, description: str) -> str:
        return self._call("create", progress, description) or "artifact-1"

    def update(self, artifact_id: str, *, progress: float, description: str) -> None:
        assert artifact_id == "artifact-1"
        self._call("update", progress, description)

    def _call(self, kind: str, percent: float, description: str) -> None:
        time.sleep(self.delay)
        if self.fail:
            raise ConnectionError("prefect api down")
        self.calls.append((kind, percent, decode_description(percent, description).stage))


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> SlowApi:
    """A Progress that believes it runs inside a flow run, talking to SlowApi."""
    import tasks.progress as module

    fake = SlowApi()

    class InsideAFlowRun:
        @staticmethod
        def get() -> object:
            return object()

    monkeypatch.setattr(module, "FlowRunContext", InsideAFlowRun)
    monkeypatch.setattr(module, "create_progress_artifact", fake.create)
    monkeypatch.setattr(module, "update_progress_artifact", fake.update)
    return fake


def test_foreground_progress_sends_each_stage_before_returning(api: SlowApi) -> None:
    progress = Progress(["a", "b"])
    progress.stage("a")
    progress.stage("b")
    progress.finish()
    assert [(kind, stage) for kind, _, stage in api.calls] == [
        ("create", None), ("update", "a"), ("update", "b"), ("update", "b")
    ]  # fmt: skip
    assert api.calls[-1][1] == 100.0


def test_background_progress_never_blocks_and_ends_with_the_latest_state(api: SlowApi) -> None:
    order = ["source", "transform_filter", "target"]
    started = time.perf_counter()
    progress = Progress(order, background=True, settle=0.05)
    for name in order:
        progress.stage(name)
    progress.finish("done")
    assert time.perf_counter() - started < api.delay  # nothing above waited on the "API"
    progress.close()
    assert api.calls[0][0] == "create"
    assert api.calls[-1][1] == 100.0  # the last state is delivered before close() returns
    assert len(api.calls) < 5  # states posted while the API was busy were skipped, not queued
    percents = [percent for _, percent, _ in api.calls]
    assert percents == sorted(percents)  # never reordered


def test_background_progress_sends_every_stage_of_a_slow_run(api: SlowApi) -> None:
    progress = Progress(["a", "b"], background=True)
    progress.stage("a")
    time.sleep(0.3)
    progress.stage("b")
    time.sleep(0.3)
    progress.finish()
    progress.close()
    assert [(kind, stage) for kind, _, stage in api.calls] == [
        ("create", None), ("update", "a"), ("update", "b"), ("update", "b")
    ]  # fmt: skip


def test_a_failing_progress_api_is_a_warning_not_a_failed_run(
    api: SlowApi, caplog: pytest.LogCaptureFixture
) -> None:
    api.fail = True
    progress = Progress(["a"], background=True)
    progress.stage("a")
    progress.finish()
    progress.close(timeout=5)
    assert "progress not reported: ConnectionError: prefect api down" in caplog.text
