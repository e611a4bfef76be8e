"""Flow runs of the legacy jobs: submit, read state back (cached), cancel, force a state, delete."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterType,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import ArtifactSort
from prefect.exceptions import ObjectNotFound
from prefect.states import Scheduled, State

from api_bridge.gateway.connection import PrefectConnection
from api_bridge.gateway.status import JobNotFound, JobStatus, to_status
from storage.filesystems import get_storage
from storage.jobs import JobState


class Runs(PrefectConnection):
    """Submitting and steering flow runs; `record` (the legacy-id map) is the LegacyIds part's."""

    # --- submission --------------------------------------------------------------------------------
    def submit(
        self,
        job_type: str,
        parameters: dict[str, Any],
        *,
        api: str,
        legacy_id: str,
        parent_id: str | None = None,
        tags: Iterable[str] = (),
        flow_run_name: str | None = None,
        idempotency_key: str | None = None,
    ) -> UUID:
        """Create a flow run for `job_type` and record it under (`api`, `legacy_id`).

        The legacy id is the idempotency key, so a retried submission (after a timeout or a 503 under a
        burst on SQLite) finds the run the first attempt created instead of starting a second one. An
        explicit `idempotency_key` replaces it when several requests must converge on one run (DataFlow's
        one-run-at-a-time rule): Prefect then returns the existing run to every later caller.
        """
        deployment_id = self._deployment_id(job_type)
        key = idempotency_key or f"{api}:{legacy_id}"
        all_tags = ["flowbridge", f"api:{api}", f"job:{job_type}", *tags]
        with self._submit_slots:
            flow_run = self._with_retries(
                lambda: self.client.create_flow_run_from_deployment(
                    deployment_id,
                    parameters=parameters,
                    idempotency_key=key,
                    tags=all_tags,
                    name=flow_run_name,
                ),
                what=f"submit {job_type}",
            )
        self.record(api=api, legacy_id=legacy_id, parent_id=parent_id, job_type=job_type, run_id=flow_run.id)
        return flow_run.id

    # --- runs by tag, deployment schedules ------------------------------------------------------------
    def latest_run(self, job_type: str, tag: str, *, subflows: bool = False) -> JobStatus | None:
        """The newest flow run of `job_type`'s deployment carrying `tag`, or None. With `subflows`, runs
        started inside another flow run (they have no deployment) carrying `tag` count too."""
        from prefect.client.schemas.filters import FlowRunFilterDeploymentId, FlowRunFilterTags
        from prefect.client.schemas.sorting import FlowRunSort

        deployment = None if subflows else FlowRunFilterDeploymentId(any_=[self._deployment_id(job_type)])
        runs = self.client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag]), deployment_id=deployment),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=20,
        )
        if not runs:
            return None
        newest = max(runs, key=lambda r: r.created.timestamp() if r.created else 0.0)
        return self.status(newest.id, fresh=True)

    # --- reading state back ------------------------------------------------------------------------
    def status(self, run_id: UUID | str, *, fresh: bool = False) -> JobStatus:
        """A run's status, reused for FLOWBRIDGE_STATUS_CACHE_SECONDS. Concurrent pollers of one run share
        one read from Prefect, so 50 clients polling a job cost one API call per cache period."""
        return self._statuses.get(UUID(str(run_id)), fresh=fresh)

    def peek_status(self, run_id: UUID | str) -> JobStatus | None:
        """The status without any I/O (see api_bridge/cache.py), or None when the caller must call
        `status` off the event loop. It is at most twice the cache period old."""
        return self._statuses.peek(UUID(str(run_id)))

    def statuses(self, run_ids: Sequence[UUID | str]) -> dict[UUID, JobStatus]:
        """Many runs in two API calls (for listings); they also refresh the status cache."""
        ids = [UUID(str(r)) for r in run_ids]
        if not ids:
            return {}
        runs = self.client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
        artifacts = self.client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=ids), type=ArtifactFilterType(any_=["progress"])
            ),
            sort=ArtifactSort.UPDATED_DESC,
        )
        latest: dict[UUID, Any] = {}
        for artifact in artifacts:
            latest.setdefault(artifact.flow_run_id, artifact)
        found = {run.id: to_status(run, latest.get(run.id)) for run in runs}
        for run_id, status in found.items():  # a listing and the detail polled after it must agree
            self._statuses.put(run_id, status)
        return found

    def _read_status(self, run_id: UUID) -> JobStatus:
        try:
            run = self.client.read_flow_run(run_id)
        except ObjectNotFound:
            raise JobNotFound(str(run_id)) from None
        artifacts = self.client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]), type=ArtifactFilterType(any_=["progress"])
            ),
            sort=ArtifactSort.UPDATED_DESC,
            limit=1,
        )
        return to_status(run, artifacts[0] if artifacts else None)

    # --- control -----------------------------------------------------------------------------------
    def cancel(self, run_id: UUID | str, message: str = "Cancelled by the client") -> JobStatus:
        """Stop a run: a waiting run is cancelled at once, a running one is asked to stop (the runner
        kills its process and the state becomes Cancelled)."""
        run_id = UUID(str(run_id))
        # A runner can pick the run up between our read and our write (with pickup on events that window
        # is a fraction of a second): a waiting run we cancelled may then be RUNNING, so look again and ask
        # a running one to stop.
        for _attempt in range(3):
            current = self.status(run_id, fresh=True)
            if current.state.is_final or current.state is JobState.CANCELLING:
                return current
            target = StateType.CANCELLED if current.state.is_waiting else StateType.CANCELLING
            self.client.set_flow_run_state(run_id, State(type=target, message=message), force=True)
        return self.status(run_id, fresh=True)

    def set_state(self, run_id: UUID | str, state: JobState, message: str | None = None) -> JobStatus:
        """Force a state (legacy APIs that let an operator mark a job done or failed). SCHEDULED re-queues
        the run: it gets a scheduled time of now, which is what a runner or worker polls for."""
        run_id = UUID(str(run_id))
        new_state = (
            Scheduled(scheduled_time=datetime.now(UTC), message=message)
            if state is JobState.SCHEDULED
            else State(type=StateType(state.value), message=message)
        )
        self.client.set_flow_run_state(run_id, new_state, force=True)
        return self.status(run_id, fresh=True)

    def set_tags(self, run_id: UUID | str, tags: Iterable[str]) -> None:
        self.client.update_flow_run(UUID(str(run_id)), tags=list(tags))
        self._statuses.drop(UUID(str(run_id)))

    def delete(self, run_id: UUID | str) -> int:
        """Delete the flow run and its files; returns bytes freed."""
        freed = get_storage().delete_run(str(run_id))
        with contextlib.suppress(ObjectNotFound):
            self.client.delete_flow_run(UUID(str(run_id)))
        self._statuses.drop(UUID(str(run_id)))
        return freed
