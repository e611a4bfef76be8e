"""Step timeouts (tasks/timeouts.py): the limit comes from the settings at call time, a step past it is cut
off (even a blocking call, on the main thread) and fails with a message naming the step and the setting."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from prefect.task_engine import TaskRunTimeoutError

from flowbridge.settings import Settings, get_settings
from tasks import timeouts


@pytest.fixture()
def tiny_limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("FLOWBRIDGE_GASFLUX_STEP_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("FLOWBRIDGE_DATAFLOW_STEP_TIMEOUT_SECONDS", "7")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# pytest-timeout's signal method holds SIGALRM, which makes Prefect fall back to a watcher thread that
# cannot interrupt a blocking call; a flow run's main thread has no such handler
@pytest.mark.timeout(60, method="thread")
def test_deadline_cuts_off_a_blocking_step_and_names_it(tiny_limits: None) -> None:
    started = time.monotonic()
    with (
        pytest.raises(timeouts.StepTimeout) as caught,
        timeouts.deadline("spatial_interpolation", "gasflux_step_timeout_seconds"),
    ):
        time.sleep(5)  # a blocking call: SIGALRM interrupts it on the main thread
    assert time.monotonic() - started < 2
    assert str(caught.value) == (
        "step spatial_interpolation timed out after 0.5 s "
        "(limit set by FLOWBRIDGE_GASFLUX_STEP_TIMEOUT_SECONDS)"
    )


@pytest.mark.timeout(60, method="thread")
def test_deadline_lets_a_quick_step_finish(tiny_limits: None) -> None:
    with timeouts.deadline("flux", "gasflux_step_timeout_seconds"):
        value = sum(range(1000))
    assert value == 499500
    time.sleep(0.7)  # the alarm was cleared: nothing fires after the block


class _FakeTask:
    """What run_step uses of a Prefect task: name, with_options and the call."""

    name = "transform_filter"

    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.options: dict[str, Any] = {}

    def with_options(self, **options: Any) -> _FakeTask:
        self.options = options
        return self

    def __call__(self, *args: Any) -> Any:
        if self.fail:
            raise TaskRunTimeoutError("Scope timed out after 7.0 second(s).")
        return args


def test_run_step_sets_the_timeout_from_settings_and_names_the_step(tiny_limits: None) -> None:
    quick = _FakeTask(fail=False)
    assert timeouts.run_step(quick, "dataflow_step_timeout_seconds", 1, 2) == (1, 2)  # type: ignore[arg-type]
    assert quick.options == {"timeout_seconds": 7.0}
    with pytest.raises(timeouts.StepTimeout, match=r"^step transform_filter timed out after 7 s .*"
                       r"FLOWBRIDGE_DATAFLOW_STEP_TIMEOUT_SECONDS"):  # fmt: skip
        timeouts.run_step(_FakeTask(fail=True), "dataflow_step_timeout_seconds")  # type: ignore[arg-type]


def test_every_timeout_setting_is_positive_and_documented() -> None:
    names = [n for n in Settings.model_fields if n.endswith("timeout_seconds")]
    assert {
        "remote_io_timeout_seconds",
        "dataflow_step_timeout_seconds",
        "gasflux_step_timeout_seconds",
        "forecast_timeout_seconds",
        "mrms_train_timeout_seconds",
        "llm_timeout_seconds",
        "smtp_timeout_seconds",
    } <= set(names)
    with pytest.raises(ValueError):
        Settings(dataflow_step_timeout_seconds=0)
    with pytest.raises(ValueError):
        Settings(dataflow_lease_seconds=30)  # Prefect refuses leases under 60 s
