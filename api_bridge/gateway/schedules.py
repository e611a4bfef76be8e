"""Cron schedules of a job type's deployment (DataFlow's scheduled runs), several per deployment by slug."""

from __future__ import annotations

from typing import Any

from api_bridge.gateway.connection import PrefectConnection


class Schedules(PrefectConnection):
    """Create, replace, remove and list a deployment's schedules."""

    def set_schedule(
        self, job_type: str, slug: str, cron: str, parameters: dict[str, Any], *, timezone: str = "UTC"
    ) -> None:
        """Create or replace the cron schedule `slug` of `job_type`'s deployment, with its own parameters.

        Several schedules share one served deployment this way; deployments/serve.py leaves schedules
        added here in place when the runner restarts.
        """
        from prefect.client.schemas.actions import DeploymentScheduleCreate
        from prefect.client.schemas.schedules import CronSchedule

        deployment_id = self._deployment_id(job_type)
        schedule = CronSchedule(cron=cron, timezone=timezone)
        for existing in self.client.read_deployment_schedules(deployment_id):
            if existing.slug == slug:
                self.client.update_deployment_schedule(
                    deployment_id, existing.id, active=True, schedule=schedule, parameters=parameters
                )
                return
        self.client.create_deployment_schedules(
            deployment_id,
            [DeploymentScheduleCreate(schedule=schedule, active=True, parameters=parameters, slug=slug)],
        )

    def remove_schedule(self, job_type: str, slug: str) -> bool:
        """Delete schedule `slug` (and the runs it had scheduled); False when there was none."""
        deployment_id = self._deployment_id(job_type)
        for existing in self.client.read_deployment_schedules(deployment_id):
            if existing.slug == slug:
                self.client.delete_deployment_schedule(deployment_id, existing.id)
                return True
        return False

    def schedules(self, job_type: str) -> dict[str, dict[str, Any]]:
        """slug -> {cron, active, parameters} of `job_type`'s deployment."""
        deployment_id = self._deployment_id(job_type)
        return {
            s.slug: {
                "cron": getattr(s.schedule, "cron", None),
                "active": s.active,
                "parameters": dict(s.parameters or {}),
            }
            for s in self.client.read_deployment_schedules(deployment_id)
            if s.slug
        }
