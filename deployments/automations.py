"""Automations flowbridge needs on the Prefect server, created idempotently at start-up."""

from __future__ import annotations

import logging
from datetime import timedelta

from prefect.automations import Automation
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

ZOMBIE_AUTOMATION = "flowbridge: crash flow runs without heartbeat"
log = logging.getLogger("flowbridge.automations")


def zombie_automation(after_seconds: int) -> Automation:
    """Mark a run Crashed when its process stops sending heartbeats (OOM or container kill), so no legacy
    client ever polls a job that stays RUNNING forever."""
    return Automation(
        name=ZOMBIE_AUTOMATION,
        description="Flow runs whose heartbeat stops are marked Crashed with a reason.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=after_seconds),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"No heartbeat for {after_seconds} s: the process running this job was lost.",
            )
        ],
    )


def ensure_automations(zombie_after_seconds: int) -> None:
    wanted = zombie_automation(zombie_after_seconds)
    try:
        existing = Automation.read(name=ZOMBIE_AUTOMATION)
    except ValueError:
        existing = None
    if existing is not None:
        if existing.trigger.within == wanted.trigger.within:  # type: ignore[union-attr]
            return
        existing.delete()
    wanted.create()
    log.info("created automation %r", ZOMBIE_AUTOMATION)
