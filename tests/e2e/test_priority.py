"""GasFlux priority acts: on a saturated runner, a task raised to `high` while queued behind others starts
first (a stack of its own with one runner slot, so no other test's runs queue in between)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.gasflux.test_gasflux_api import _poll, _upload, plume  # noqa: F401  (module fixture)
from tests.support.stack import TestStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def _probe_running(seconds: float) -> None:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        deployment = await client.read_deployment_by_name("diagnostics-probe/default")
        run = await client.create_flow_run_from_deployment(deployment.id, parameters={"seconds": seconds})
        deadline = time.monotonic() + 120
        while (state := (await client.read_flow_run(run.id)).state) is None or not state.is_running():
            assert time.monotonic() < deadline, "the blocking probe never ran"
            await asyncio.sleep(0.2)


async def _start_times(job_ids: list[str]) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    async with get_client() as client:
        out = {}
        for job_id in job_ids:
            (run,) = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"job_id:{job_id}"]))
            )
            out[job_id] = run.start_time
        return out


def test_a_high_priority_task_queued_last_starts_first(plume: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    from prefect.settings import PREFECT_API_URL, temporary_settings

    own = TestStack(postgres=False, runner_limit=1)
    info = own.start()
    try:
        with (
            temporary_settings({PREFECT_API_URL: info.prefect_api_url}),
            httpx.Client(base_url=info.bridge_url, timeout=60) as client,
        ):
            asyncio.run(_probe_running(25))  # the one slot is taken
            queued = [_upload(client, plume["data"], plume["config"]).json()["job_id"] for _ in range(3)]
            raised = client.put(f"/task/{queued[-1]}", json={"priority": "high"})
            assert raised.status_code == 200 and raised.json()["data"]["task_info"]["priority"] == "high"
            for job_id in queued:
                assert _poll(client, job_id, timeout=400)[0]["status"] == "completed"
            started = asyncio.run(_start_times(queued))
        first, second, high = (started[job_id] for job_id in queued)
        assert high < first < second, started
    finally:
        own.stop()
