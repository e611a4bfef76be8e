"""Timeouts for every step that touches the network or runs user-sized work (issue 14, item 4).

A hung HDFS read, a kriging on a huge grid or a stuck fit would otherwise hold a runner slot for ever.
Each step's limit is a `FLOWBRIDGE_*_TIMEOUT_SECONDS` setting, read when the flow runs (settings load at
run time, so a decorator could not hold them): Prefect tasks get it as their `timeout_seconds` through
`.with_options` (`run_step`), plain steps inside a flow get Prefect's own timeout scope (`deadline`).
Either way a timed-out step raises `StepTimeout`, whose message names the step, its limit and the
setting that sets it, so the job fails with that message and the legacy status API shows it.

Prefect interrupts a step with SIGALRM on the flow run's main thread (where these steps run), so even a
blocking read is cut off; on another thread it can only stop the step once the blocking call returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from prefect import Task
from prefect.task_engine import TaskRunTimeoutError
from prefect.utilities.timeout import timeout

from flowbridge.settings import Settings, env_names, get_settings

R = TypeVar("R")


class StepTimeout(TimeoutError):
    """A step ran past its configured timeout."""


class _Expired(TimeoutError):
    """Raised by Prefect's timeout scope inside `deadline`; turned into StepTimeout."""


def limit(setting: str) -> float:
    """The setting's value in seconds (a field of Settings)."""
    return float(getattr(get_settings(), setting))


def message(step: str, setting: str, seconds: float) -> str:
    env = env_names(setting, Settings.model_fields[setting])[0]
    return f"step {step} timed out after {seconds:g} s (limit set by {env})"


def timed(step_task: Task[Any, R], setting: str) -> Task[Any, R]:
    """`step_task` with the setting's timeout (for callers that add their own options afterwards)."""
    return step_task.with_options(timeout_seconds=limit(setting))


def run_step(step_task: Task[Any, R], setting: str, *args: Any, step: str | None = None, **kwargs: Any) -> R:
    """Call `step_task` with the setting's timeout; a timeout fails with a StepTimeout naming the step."""
    seconds = limit(setting)
    try:
        return step_task.with_options(timeout_seconds=seconds)(*args, **kwargs)
    except TaskRunTimeoutError:
        raise StepTimeout(message(step or step_task.name, setting, seconds)) from None


@contextmanager
def deadline(step: str, setting: str) -> Iterator[None]:
    """Prefect's timeout scope around a plain (non-task) step; running past it raises StepTimeout."""
    seconds = limit(setting)
    try:
        with timeout(seconds=seconds, timeout_exc_type=_Expired):
            yield
    except (_Expired, TaskRunTimeoutError):
        raise StepTimeout(message(step, setting, seconds)) from None
