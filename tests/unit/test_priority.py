"""Run priority: the order in which a saturated runner takes scheduled runs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from uuid import uuid4

import anyio

from api_bridge.routers.gasflux.codes import Priority
from deployments.priority import RANK, prioritise_runner, start_order


def _run(minutes: int, *tags: str) -> SimpleNamespace:
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    return SimpleNamespace(id=uuid4(), tags=list(tags), next_scheduled_start_time=start)


def test_gasflux_priorities_are_the_runners() -> None:
    assert {str(p) for p in Priority} == set(RANK)


def test_high_goes_first_then_normal_then_low_each_in_scheduled_order() -> None:
    low, normal_early, normal_late, untagged, high = (
        _run(0, "priority:low"),
        _run(1, "priority:normal"),
        _run(5, "priority:normal"),
        _run(3),
        _run(9, "priority:high", "gasflux"),
    )
    ordered = sorted([low, normal_early, normal_late, untagged, high], key=start_order)
    assert ordered == [high, normal_early, untagged, normal_late, low]


def test_a_saturated_runner_takes_the_high_priority_run_into_its_one_free_slot() -> None:
    """Prefect's poller with one free slot: the high-priority run queued last is the one submitted."""
    submitted = []
    limits = SimpleNamespace(free=1)

    def acquire() -> object:
        if limits.free == 0:
            raise anyio.WouldBlock
        limits.free -= 1
        return object()

    async def submit_run(flow_run, _group, _token) -> None:  # type: ignore[no-untyped-def]
        submitted.append(flow_run)

    poller = SimpleNamespace(
        _submitting_flow_run_ids=set(),
        _limit_manager=SimpleNamespace(acquire=acquire),
        _submit_run=submit_run,
        _submit_scheduled_flow_runs=None,
    )
    prioritise_runner(poller)
    queued = [_run(0, "priority:normal"), _run(1, "priority:low"), _run(2, "priority:high")]

    async def main() -> None:
        async with anyio.create_task_group() as group:
            await poller._submit_scheduled_flow_runs(queued, group)

    asyncio.run(main())
    assert submitted == [queued[2]]
