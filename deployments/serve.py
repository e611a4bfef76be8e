"""The embedded runner: one process serving every registered deployment.

`prefect.yaml` declares the same deployments for a process work pool (docker-compose, more machines);
here one Prefect `Runner` runs up to `runner_limit` flow runs at once, each in a process of its own, so a
crashing job never takes the runner down. Two things make a job start at once instead of seconds later:

- warm start (`FLOWBRIDGE_WARM_START`, on by default): each run is forked from a template process that
  imported every flow once (`deployments/warm_start.py`), instead of a fresh interpreter per run;
- pickup on events: the runner subscribes to the Prefect server's event stream and polls for scheduled runs
  as soon as one of its deployments gets a run (and whenever a slot frees up); the `runner_poll_seconds`
  poll stays as the fallback, so a missed event costs at most one tick.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any

from deployments.automations import ensure_automations
from deployments.pickup import poll_when_woken, wake_on_scheduled
from deployments.priority import prioritise_runner
from flowbridge.settings import Settings, get_settings
from flows.registry import DEPLOYMENT, JOB_TYPES

if TYPE_CHECKING:
    from prefect.runner import Runner

log = logging.getLogger("flowbridge.runner")


def runner_environment(settings: Settings | None = None) -> dict[str, str]:
    """Prefect settings every runner process and its flow-run subprocesses need."""
    settings = settings or get_settings()
    return {
        "PREFECT_RUNNER_POLL_FREQUENCY": str(max(1, int(settings.runner_poll_seconds))),
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(settings.heartbeat_seconds),
        "PREFECT_RUNNER_PROCESS_LIMIT": str(settings.runner_limit),
    }


def build_deployments() -> list:
    return [deployment for _flow, deployment in _flows_and_deployments()]


def _flows_and_deployments() -> list[tuple[Any, Any]]:
    pairs = []
    for job in JOB_TYPES.values():
        flow = job.load_flow()
        pairs.append(
            (
                flow,
                flow.to_deployment(
                    name=DEPLOYMENT,
                    description=job.description,
                    tags=["flowbridge", f"job:{job.name}", *job.tags],
                    interval=job.interval_seconds,
                ),
            )
        )
    return pairs


def _wake_when_slot_frees(runner: Runner, wake: asyncio.Event) -> None:
    """A run that finished frees a slot: look for runs that were skipped at capacity right away."""
    limits = runner._limit_manager
    release = limits.release

    def release_and_wake(token: Any) -> None:
        release(token)
        wake.set()

    limits.release = release_and_wake  # type: ignore[method-assign]


async def _serve(pairs: list[tuple[Any, Any]], limit: int, warm: bool) -> None:
    import anyio
    from prefect.runner import Runner

    runner = Runner(pause_on_shutdown=True, limit=limit)
    for flow, deployment in pairs:
        deployment_id = await runner.add_deployment(deployment)
        if warm:
            # a deployment with its flow in memory runs through DirectSubprocessStarter (the warm-start
            # seam) instead of `python -m prefect.engine`, which re-imports everything per run
            runner._deployment_registry.register_flow(deployment_id, flow)
    wake = asyncio.Event()
    async with anyio.create_task_group() as group:

        async def pickup() -> None:
            while not runner.started:
                await asyncio.sleep(0.05)
            _wake_when_slot_frees(runner, wake)
            poller = runner._scheduled_run_poller
            prioritise_runner(poller)
            ours = {f"prefect.deployment.{d}" for d in runner._deployment_registry.get_deployment_ids()}
            group.start_soon(poll_when_woken, wake, poller._get_and_submit_flow_runs, "runner")
            await wake_on_scheduled(lambda: ours, wake, "runner")

        group.start_soon(pickup)
        await runner.start()
        group.cancel_scope.cancel()


def main() -> None:
    os.environ.update(runner_environment())
    settings = get_settings()
    if settings.warm_start:
        from deployments import warm_start

        warm_start.install()
    ensure_automations(settings.zombie_after_seconds)
    pairs = _flows_and_deployments()
    from prefect.exceptions import TerminationSignal

    try:
        asyncio.run(_serve(pairs, settings.runner_limit, settings.warm_start))
    except (KeyboardInterrupt, TerminationSignal) as exc:
        log.info("runner received %s, shutting down", type(exc).__name__)


if __name__ == "__main__":
    main()
