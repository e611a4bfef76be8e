"""One run per dataflow through a Prefect global concurrency limit, and step timeouts (issue 14, items 2
and 4), over real HTTP against a stack of this module's own: two bridges, one Prefect server (PostgreSQL),
one metadata DB, the runner, with a short DataFlow step timeout and a fast lease repossessor.

A slow dataflow is a PostgreSQL source whose query sleeps (`pg_sleep`): a network step that holds its
run (and the dataflow's slot) for as long as the test needs.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.support.stack import StackInfo, TestStack, extra_bridge, stack_environment

pytestmark = pytest.mark.e2e
BASE = "/api/data-flow"
STEP_TIMEOUT = 15  # seconds: FLOWBRIDGE_DATAFLOW_STEP_TIMEOUT_SECONDS of this module's stack
T = TypeVar("T")


@pytest.fixture(scope="module")
def own_test_stack() -> Iterator[TestStack]:
    started = TestStack(
        extra_env={
            "FLOWBRIDGE_DATAFLOW_STEP_TIMEOUT_SECONDS": str(STEP_TIMEOUT),
            "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "2",
        }
    )
    info = started.start()
    try:
        with stack_environment(info):
            yield started
    finally:
        if os.environ.get("FLOWBRIDGE_TEST_DUMP_LOGS"):
            started.dump_logs()
        started.stop()


@pytest.fixture(scope="module")
def own_stack(own_test_stack: TestStack) -> StackInfo:
    return own_test_stack.info


@pytest.fixture()
def bridge(own_stack: StackInfo) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=own_stack.bridge_url, timeout=60) as client:
        yield client


def until(check: Callable[[], T], timeout: float, what: str, every: float = 0.3) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not seen within {timeout} s: {what}")


def slow_dataflow(
    client: httpx.Client, stack: StackInfo, tmp_path: Path, seconds: float, *, joins: int = 0
) -> dict[str, Any]:
    """A dataflow whose source (and each of `joins` joined sources) sleeps `seconds` in PostgreSQL."""
    sleeper = {"type": "postgresql", "url": stack.database_url, "query": f"SELECT pg_sleep({seconds}) AS x"}
    config = {
        "source": sleeper,
        "transforms": [{"type": "join", "source": sleeper, "on": "x"} for _ in range(joins)],
        "target": {"type": "csv", "path": str(tmp_path / f"out-{time.monotonic_ns()}.csv")},
    }
    answer = client.post(
        f"{BASE}/add-dataflow", json={"name": "慢数据流", "description": "e2e", "config": config}
    )
    assert answer.json()["code"] == 200, answer.text
    return answer.json()["data"]


def execute(client: httpx.Client, dataflow_id: int) -> dict[str, Any]:
    return client.post(f"{BASE}/execute-dataflow/{dataflow_id}", json={"params": {}}).json()


def status(client: httpx.Client, dataflow_id: int) -> dict[str, Any]:
    answer = client.get(f"{BASE}/get-dataflow-status/{dataflow_id}").json()
    assert answer["code"] == 200, answer
    return answer["data"]


def wait_final(client: httpx.Client, dataflow_id: int, timeout: float = 120) -> dict[str, Any]:
    return until(
        lambda: (s := status(client, dataflow_id))["status"] in {"completed", "failed"} and s,
        timeout,
        f"dataflow {dataflow_id} final",
    )


def limit_name(dataflow_id: int) -> str:
    from flows.dataflow.limit import limit_name as name
    from storage.dataflow.repository import get_record

    return name(dataflow_id, get_record(dataflow_id).run_key)


@contextlib.contextmanager
def prefect_client() -> Iterator[Any]:
    """A sync client of this module's stack (Prefect's settings were loaded before the stack started)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings({PREFECT_API_URL: os.environ["PREFECT_API_URL"]}),
        get_client(sync_client=True) as client,
    ):
        yield client


def active_slots(dataflow_id: int) -> int | None:
    """The dataflow's limit as the Prefect server has it (None: no limit yet)."""
    from prefect.exceptions import ObjectNotFound

    with prefect_client() as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(limit_name(dataflow_id))
        except ObjectNotFound:
            return None
    assert limit.limit == 1
    return limit.active_slots


def run_state(run_id: Any) -> Any:
    with prefect_client() as client:
        return client.read_flow_run(run_id).state


def flow_runs(dataflow_id: int) -> list[Any]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with prefect_client() as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"dataflow:{dataflow_id}"]))
        )


def test_simultaneous_executes_on_two_bridges_start_one_run_that_holds_the_slot(
    bridge: httpx.Client, own_stack: StackInfo, tmp_path: Path
) -> None:
    from flows.dataflow.run import dataflow_run  # imported now: on a busy machine it takes seconds

    # each step stays under the step timeout; three of them hold the slot long enough to start a run beside
    flow = slow_dataflow(bridge, own_stack, tmp_path, STEP_TIMEOUT - 3, joins=2)
    with extra_bridge(own_stack) as other, httpx.Client(base_url=other.url, timeout=60) as second:
        clients = [bridge, second] * 4
        barrier = threading.Barrier(len(clients))

        def fire(client: httpx.Client) -> dict[str, Any]:
            barrier.wait()
            return execute(client, flow["id"])

        with concurrent.futures.ThreadPoolExecutor(len(clients)) as pool:
            answers = list(pool.map(fire, clients))
        codes = sorted(a["code"] for a in answers)
        assert codes == [200] + [409] * (len(clients) - 1), answers
        conflict = next(a for a in answers if a["code"] == 409)
        assert "正在执行" in conflict["message"]  # the legacy answer, as before

        # a busy machine may keep the run pending for a while: its slot is taken once it runs
        until(lambda: status(bridge, flow["id"])["status"] == "running", 120, "the run started")
        until(lambda: active_slots(flow["id"]) == 1, 10, "the run holding the dataflow's slot", every=0.1)
        # a run the bridge never saw (as a cron schedule or another runner starts one) is refused by the
        # limit itself: run here, in this process, so it starts while the holder runs however busy the
        # machine is (a deployment run could wait in the runner's queue past the holder's end)
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: own_stack.prefect_api_url}):
            state = dataflow_run(dataflow_id=flow["id"], run_key=_run_key(flow["id"]), return_state=True)
            with prefect_client() as client:
                intruder = client.read_flow_run(state.state_details.flow_run_id)
        holder = next(r for r in flow_runs(flow["id"]) if r.id != intruder.id)
        assert intruder.start_time and (holder.end_time is None or intruder.start_time < holder.end_time), (
            "the intruder ran after the holder ended: the machine was too slow for this test"
        )
        assert intruder.state is not None and intruder.state.is_failed(), intruder.state
        assert "is already running" in (intruder.state.message or "")
        assert "this run is skipped" in (intruder.state.message or "")

        # the status API now shows the skipped intruder (the newest run): the holder goes on regardless
        ended = until(lambda: (state := run_state(holder.id)).is_final() and state, 120, "the holder's end")
        assert ended.is_completed(), ended
        until(lambda: active_slots(flow["id"]) == 0, 10, "the slot given back on completion")
        assert execute(second, flow["id"])["code"] == 200  # the next execute starts a new run
        assert wait_final(bridge, flow["id"])["status"] == "completed"
    completed = [r for r in flow_runs(flow["id"]) if r.state and r.state.is_completed()]
    assert len(completed) == 2  # the winner and the next one; the intruder failed
    assert active_slots(flow["id"]) == 0


def _run_key(dataflow_id: int) -> str:
    from storage.dataflow.repository import get_record

    key = get_record(dataflow_id).run_key
    assert key
    return key


def test_a_killed_run_gives_its_slot_back(bridge: httpx.Client, own_stack: StackInfo, tmp_path: Path) -> None:
    from deployments.warm_start import run_process_ids

    flow = slow_dataflow(bridge, own_stack, tmp_path, STEP_TIMEOUT - 2)
    assert execute(bridge, flow["id"])["code"] == 200
    until(lambda: status(bridge, flow["id"])["status"] == "running", 120, "the run started")
    until(lambda: active_slots(flow["id"]) == 1, 10, "the run holding the dataflow's slot", every=0.1)
    (run,) = flow_runs(flow["id"])
    pids = until(lambda: run_process_ids(str(run.id)), 10, "the run's process")
    killed = time.monotonic()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)  # what an OOM kill does
    final = wait_final(bridge, flow["id"], timeout=60)
    assert final["status"] == "failed" and final["error_message"], final
    # the runner's on_crashed hook frees it at once, long before the 60 s lease would expire
    freed = until(lambda: active_slots(flow["id"]) == 0, 30, "the crashed run's slot given back")
    print(f"slot free {time.monotonic() - killed:.1f} s after the SIGKILL")  # measured for the README
    assert freed and time.monotonic() - killed < 40  # well before the 60 s lease would have expired
    assert execute(bridge, flow["id"])["code"] == 200
    assert wait_final(bridge, flow["id"])["status"] == "completed"


@pytest.mark.slow
def test_a_slot_whose_holder_vanished_frees_when_its_lease_expires(
    bridge: httpx.Client, own_stack: StackInfo, tmp_path: Path
) -> None:
    """A holder gone with its whole runner (no hook left to run) stops renewing: the lease expires."""
    from flows.dataflow.limit import MIN_LEASE_SECONDS, ensure_limit

    flow = slow_dataflow(bridge, own_stack, tmp_path, 0)
    name = limit_name(flow["id"])
    with prefect_client() as client:
        ensure_limit(client, name)
        client.increment_concurrency_slots_with_lease(
            names=[name], slots=1, mode="concurrency", lease_duration=MIN_LEASE_SECONDS
        )  # and never renewed, never released
    taken = time.monotonic()
    assert execute(bridge, flow["id"])["code"] == 200  # no run of it is in Prefect: the bridge lets it go
    refused = wait_final(bridge, flow["id"])
    assert refused["status"] == "failed" and "is already running" in refused["error_message"], refused
    until(lambda: active_slots(flow["id"]) == 0, MIN_LEASE_SECONDS + 30, "the expired lease's slot", every=1)
    assert time.monotonic() - taken >= MIN_LEASE_SECONDS - 1  # not before the lease ran out
    assert execute(bridge, flow["id"])["code"] == 200
    assert wait_final(bridge, flow["id"])["status"] == "completed"


def test_a_step_past_its_timeout_fails_the_job_naming_the_step(
    bridge: httpx.Client, own_stack: StackInfo, tmp_path: Path
) -> None:
    flow = slow_dataflow(bridge, own_stack, tmp_path, 120)
    started = time.monotonic()
    assert execute(bridge, flow["id"])["code"] == 200
    final = wait_final(bridge, flow["id"], timeout=90)
    assert final["status"] == "failed", final
    assert time.monotonic() - started < 60  # cut off, not waited out
    message = final["error_message"]
    assert f"step source timed out after {STEP_TIMEOUT} s" in message, message
    assert "FLOWBRIDGE_DATAFLOW_STEP_TIMEOUT_SECONDS" in message, message
    until(lambda: active_slots(flow["id"]) == 0, 10, "the timed-out run's slot given back")
    lines = bridge.get(f"{BASE}/get-dataflow-logs/{flow['id']}", params={"page_size": 200}).json()
    assert any("timed out" in line["message"] for line in lines["data"]["logs"]), lines


@pytest.mark.slow
def test_a_held_slot_survives_a_prefect_server_restart_and_still_expires(
    bridge: httpx.Client, own_test_stack: TestStack, tmp_path: Path
) -> None:
    """Restarting the Prefect server loses no lease: the slot stays held across the restart and frees when
    its lease expires, as without a restart. With Prefect's in-memory lease storage (its default, which
    `flowbridge up` overrides) the restarted server would forget the lease and keep the slot taken for good,
    and this test would time out waiting for it. Afterwards the runner and the bridge serve on."""
    from flows.dataflow.limit import MIN_LEASE_SECONDS, ensure_limit

    flow = slow_dataflow(bridge, own_test_stack.info, tmp_path, 0)
    name = limit_name(flow["id"])
    with prefect_client() as client:
        ensure_limit(client, name)
        client.increment_concurrency_slots_with_lease(
            names=[name], slots=1, mode="concurrency", lease_duration=MIN_LEASE_SECONDS
        )  # as a run holding it would, but never renewed: its expiry is what the restart must not lose
    taken = time.monotonic()
    own_test_stack.stack.stop_process("prefect-server")
    own_test_stack.stack.start_server()
    assert active_slots(flow["id"]) == 1, "the restart dropped the held slot"
    until(lambda: active_slots(flow["id"]) == 0, MIN_LEASE_SECONDS + 45, "the lease expiring after restart")
    assert time.monotonic() - taken >= MIN_LEASE_SECONDS - 1  # freed by its expiry, not by the restart
    assert execute(bridge, flow["id"])["code"] == 200
    assert wait_final(bridge, flow["id"])["status"] == "completed"
