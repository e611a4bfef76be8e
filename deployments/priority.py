"""Run priority: which scheduled run a runner or worker starts first when it has fewer free slots than runs.

A run tagged `priority:high` starts before `priority:normal` (and untagged) runs, which start before
`priority:low`; runs of equal priority keep Prefect's order (earliest scheduled time first). GasFlux's
`priority` (002's PUT /task) is such a tag. It acts in the embedded runner and in `flowbridge worker`,
the two places that pick the next run; nothing about a run's state or schedule changes, so there is no race
with a runner that is already starting it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

PRIORITY_TAG = "priority:"
RANK = {"high": 0, "normal": 1, "low": 2}


def rank(tags: Iterable[str]) -> int:
    for tag in tags:
        if tag.startswith(PRIORITY_TAG):
            return RANK.get(tag[len(PRIORITY_TAG) :], RANK["normal"])
    return RANK["normal"]


def start_order(flow_run: Any) -> tuple[int, bool, Any]:
    """Sort key: priority, then Prefect's own key (runs without a start time last, earliest first)."""
    start = flow_run.next_scheduled_start_time
    return (rank(flow_run.tags or ()), start is None, start)


def prioritise_runner(poller: Any) -> None:
    """Make a Prefect 3.8 ScheduledRunPoller take runs by priority: its `_submit_scheduled_flow_runs`
    with this module's sort key (Prefect's sorts by scheduled time and stops at the first run that does
    not fit in a free slot, which is then also the first run of the highest priority)."""
    import anyio

    async def submit_by_priority(flow_run_response: list[Any], task_group: Any) -> None:
        for flow_run in sorted(flow_run_response, key=start_order):
            if flow_run.id in poller._submitting_flow_run_ids:
                continue
            try:
                slot_token = poller._limit_manager.acquire()
            except anyio.WouldBlock:
                break  # sorted: no later run goes before this one
            poller._submitting_flow_run_ids.add(flow_run.id)
            task_group.start_soon(poller._submit_run, flow_run, task_group, slot_token)

    poller._submit_scheduled_flow_runs = submit_by_priority
