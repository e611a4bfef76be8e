"""Warm start on the real stack: runs are forked from the template, and a run's process is still its own
(SIGKILL and cancellation end that run only, and the runner goes on serving)."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from uuid import UUID

import httpx
import pytest

from deployments.warm_start import run_process_ids
from tests.support.polling import poll
from tests.support.stack import StackInfo

pytestmark = pytest.mark.e2e


@pytest.fixture()
def gateway(stack: StackInfo) -> Iterator:  # type: ignore[type-arg]
    from api_bridge.gateway import JobGateway

    jobs = JobGateway()
    yield jobs
    jobs.close()


def _until(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    return poll(predicate, bool, timeout=timeout, what=what, interval=0.1)


def _running_pid(gateway, run_id: UUID) -> int:  # type: ignore[no-untyped-def]
    from api_bridge.gateway import JobState

    _until(lambda: gateway.status(run_id, fresh=True).state is JobState.RUNNING, 120, "RUNNING")
    pids = _until(lambda: run_process_ids(str(run_id)), 10, "the run's named process")
    assert len(pids) == 1, pids
    return pids[0]


def _final(gateway, run_id: UUID, timeout: float = 120):  # type: ignore[no-untyped-def]
    return _until(
        lambda: (s := gateway.status(run_id, fresh=True)).state.is_final and s, timeout, f"{run_id} final"
    )


def test_a_run_is_a_child_of_the_template(gateway) -> None:  # type: ignore[no-untyped-def]
    from storage.filesystems import get_storage

    run_id = gateway.submit("diagnostics_probe", {"seconds": 0}, api="bench", legacy_id=str(uuid.uuid4()))
    assert _final(gateway, run_id).state.value == "COMPLETED"
    facts = get_storage().read_summary(str(run_id))["process"]
    assert facts["template_pid"] is not None, "the run was not forked from the warm template"
    assert facts["parent_pid"] == int(facts["template_pid"])
    assert facts["pid"] != facts["parent_pid"]


def test_sigkill_of_one_job_is_reported_and_the_runner_goes_on(stack: StackInfo, gateway) -> None:  # type: ignore[no-untyped-def]
    from api_bridge.gateway import JobState

    work_id = str(uuid.uuid4())
    run_id = gateway.submit("diagnostics_probe", {"seconds": 300, "steps": 300}, api="000", legacy_id=work_id)
    pid = _running_pid(gateway, run_id)
    os.kill(pid, signal.SIGKILL)
    status = _final(gateway, run_id, timeout=60)
    assert status.state is JobState.CRASHED, status
    # the legacy API reports the failure instead of a percentage stuck below 100 %
    answer = httpx.post(f"{stack.bridge_url}/get_resu_process", data={"work_id": work_id}, timeout=30).json()
    assert answer["ret"] == "5001", answer
    # the runner and the template survived: the next job runs, forked from the same kind of parent
    next_run = gateway.submit("diagnostics_probe", {"seconds": 0}, api="bench", legacy_id=str(uuid.uuid4()))
    assert _final(gateway, next_run).state is JobState.COMPLETED


def test_cancelling_a_warm_running_job_ends_it_cancelled(gateway) -> None:  # type: ignore[no-untyped-def]
    from api_bridge.gateway import JobState

    run_id = gateway.submit(
        "diagnostics_probe", {"seconds": 300, "steps": 300}, api="bench", legacy_id=str(uuid.uuid4())
    )
    pid = _running_pid(gateway, run_id)
    gateway.cancel(run_id)
    assert _final(gateway, run_id, timeout=90).state is JobState.CANCELLED
    _until(lambda: not run_process_ids(str(run_id)), 30, "the cancelled run's process to exit")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
