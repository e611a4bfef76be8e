"""Pickup on events: start a scheduled run as soon as the Prefect server announces it, not on the next poll.

The runner (`deployments/serve.py`) and `flowbridge worker` (`deployments/warm_worker.py`) each keep their
regular poll as the fallback; a `Scheduled` event about one of their deployments (or their work pool) wakes a
poll at once. Wake-ups that arrive while a poll runs coalesce into one more poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("flowbridge.pickup")

WAKE_EVENTS = ("prefect.flow-run.Scheduled",)


async def wake_on_scheduled(resources: Callable[[], set[str]], wake: asyncio.Event, who: str) -> None:
    """Set `wake` whenever the server announces a scheduled run related to any of `resources()`
    (resource ids such as `prefect.deployment.<id>` or `prefect.work-pool.<id>`)."""
    from prefect.events.clients import get_events_subscriber
    from prefect.events.filters import EventFilter, EventNameFilter

    event_filter = EventFilter(event=EventNameFilter(name=list(WAKE_EVENTS)))
    backoff = 1.0
    while True:
        try:
            async with get_events_subscriber(filter=event_filter) as subscriber:
                backoff = 1.0
                async for event in subscriber:
                    wanted = resources()
                    if any(related.id in wanted for related in event.related):
                        wake.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the poll keeps serving; say why pickup is slower until we reconnect
            log.warning("%s: event stream lost (%s); polling only, reconnecting in %.0f s", who, exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)


async def poll_when_woken(wake: asyncio.Event, poll: Callable[[], Awaitable[object]], who: str) -> None:
    """One poll per wake-up; wake-ups during a poll coalesce into the next one."""
    while True:
        await wake.wait()
        wake.clear()
        try:
            await poll()
        except Exception:
            log.exception("%s: poll on wake-up failed; the regular poll will pick the run up", who)
