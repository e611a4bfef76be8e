"""The embedded runner: one process serving every registered deployment.

`prefect.yaml` declares the same deployments for a process work pool (docker-compose, more machines);
here `serve` polls the API every `runner_poll_seconds` and runs up to `runner_limit` flow runs at once,
each in a fresh subprocess, so a crashing job never takes the runner down.
"""

from __future__ import annotations

import logging
import os

from flowbridge.settings import get_settings

from .automations import ensure_automations
from .registry import DEPLOYMENT, JOB_TYPES

log = logging.getLogger("flowbridge.runner")


def runner_environment() -> dict[str, str]:
    """Prefect settings every runner process and its flow-run subprocesses need."""
    settings = get_settings()
    return {
        "PREFECT_RUNNER_POLL_FREQUENCY": str(max(1, int(settings.runner_poll_seconds))),
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(settings.heartbeat_seconds),
        "PREFECT_RUNNER_PROCESS_LIMIT": str(settings.runner_limit),
    }


def build_deployments() -> list:
    deployments = []
    for job in JOB_TYPES.values():
        flow = job.load_flow()
        deployments.append(
            flow.to_deployment(
                name=DEPLOYMENT,
                description=job.description,
                tags=["flowbridge", f"job:{job.name}", *job.tags],
                interval=job.interval_seconds,
            )
        )
    return deployments


def main() -> None:
    os.environ.update(runner_environment())
    from prefect import serve

    settings = get_settings()
    ensure_automations(settings.zombie_after_seconds)
    serve(*build_deployments(), limit=settings.runner_limit, print_starting_message=True)


if __name__ == "__main__":
    main()
