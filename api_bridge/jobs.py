"""The job gateway: the only place the bridge talks to Prefect.

Routers translate their legacy ids and codes and call this; they never import `prefect`. A job is a
Prefect flow run of a registered deployment. Its state, progress (one progress artifact), logs and
times are read back from the Prefect API; its files from storage under `runs/<flow run id>/`; the map
from legacy ids to flow runs from the metadata DB. Nothing here lives only in process memory except a
sub-second status cache, so any number of bridges can run and restart freely.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

import httpx
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterType,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
    LogFilterLevel,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import ArtifactSort, LogSort
from prefect.context import SettingsContext, get_settings_context
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES
from prefect.settings import Settings as PrefectSettings
from prefect.states import Scheduled, State
from sqlalchemy import or_, select

from api_bridge.cache import RefreshingCache
from deployments.registry import get_job_type
from flowbridge.settings import Settings, get_settings
from storage.filesystems import StoredFile, get_storage
from storage.metadata import session_scope
from storage.models.jobs import JobRun
from tasks.progress import decode_description

log = logging.getLogger("flowbridge.jobs")


class JobState(StrEnum):
    """Prefect's state types, so routers map them without importing prefect."""

    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"

    @property
    def is_final(self) -> bool:
        return self in {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.CRASHED}

    @property
    def is_waiting(self) -> bool:
        return self in {JobState.SCHEDULED, JobState.PENDING, JobState.PAUSED}


class JobNotFound(LookupError):
    """No flow run (or no legacy id) by that name."""


class SubmitError(RuntimeError):
    """Prefect did not accept the flow run after bounded retries."""


@dataclass(frozen=True)
class JobStatus:
    run_id: UUID
    state: JobState
    state_name: str
    message: str | None
    percent: float
    stage: str | None
    completed_steps: int | None
    total_steps: int | None
    stage_message: str | None
    created: datetime | None
    started: datetime | None
    ended: datetime | None
    parameters: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    flow_run_name: str | None = None
    deployment_id: UUID | None = None

    @property
    def eta_seconds(self) -> float | None:
        """Remaining time extrapolated from elapsed time and percent done."""
        if self.state is not JobState.RUNNING or not self.started or self.percent <= 0:
            return None
        elapsed = (datetime.now(self.started.tzinfo) - self.started).total_seconds()
        return max(0.0, elapsed * (100.0 - self.percent) / self.percent)

    @property
    def duration_seconds(self) -> float | None:
        if not self.started:
            return None
        end = self.ended or datetime.now(self.started.tzinfo)
        return (end - self.started).total_seconds()


@dataclass(frozen=True)
class LogLine:
    index: int
    timestamp: datetime
    level: str
    message: str
    component: str


MAX_SUBFLOW_DEPTH = 10
_LEVELS = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}
_TRANSIENT = (httpx.TransportError, httpx.TimeoutException)


def normalize_id(value: str) -> str:
    """Legacy clients send UUIDs with or without dashes and in any case."""
    return value.strip().replace("-", "").lower()


class JobGateway:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self._client: SyncPrefectClient | None = None
        self._client_lock = threading.Lock()
        self._submit_slots = threading.BoundedSemaphore(self.settings.submit_concurrency)
        self._deployment_ids: dict[str, UUID] = {}
        self._statuses: RefreshingCache[UUID, JobStatus] = RefreshingCache(
            self._read_status,
            ttl=lambda: self.settings.status_cache_seconds,
            max_stale=lambda: 2 * self.settings.status_cache_seconds,
        )
        self._found: dict[tuple[str, str], tuple[float, JobRun]] = {}
        self._present: set[tuple[UUID, str]] = set()

    # --- client lifecycle --------------------------------------------------------------------------
    @property
    def client(self) -> SyncPrefectClient:
        with self._client_lock:
            if self._client is None:
                # the URL from our settings, never Prefect's import-time default or an ephemeral server
                client = SyncPrefectClient(self.settings.effective_prefect_api_url)
                client.__enter__()
                self._client = client
            return self._client

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.__exit__(None, None, None)
                self._client = None

    def healthy(self) -> bool:
        return self.client.api_healthcheck() is None

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

    def record(self, *, api: str, legacy_id: str, parent_id: str | None, job_type: str, run_id: UUID) -> None:
        with session_scope() as session:
            exists = session.scalar(select(JobRun).where(JobRun.api == api, JobRun.legacy_id == legacy_id))
            if exists is None:
                session.add(
                    JobRun(
                        api=api,
                        legacy_id=legacy_id,
                        parent_id=parent_id,
                        job_type=job_type,
                        flow_run_id=str(run_id),
                    )
                )

    def _deployment_id(self, job_type: str) -> UUID:
        name = get_job_type(job_type).deployment_name
        if name not in self._deployment_ids:
            deployment = self._with_retries(lambda: self.client.read_deployment_by_name(name), what=name)
            self._deployment_ids[name] = deployment.id
        return self._deployment_ids[name]

    def _with_retries(self, call: Any, *, what: str) -> Any:
        """One Prefect API call, retried by the Prefect client alone: `submit_attempts` attempts in all.

        Prefect's HTTP client already retries 429/502/503/408 and dropped connections with exponential
        backoff and jitter (honouring Retry-After), which is what a burst on SQLite's single writer
        answers (503). A loop here on top multiplied the attempts (6 x 6); instead the client's own
        PREFECT_CLIENT_MAX_RETRIES is set for these calls, and what is left after its retries becomes a
        SubmitError (a documented "try again" answer of each legacy API), never a 500.
        """
        with SettingsContext(profile=self._prefect_context.profile, settings=self._prefect_settings):
            try:
                return call()
            except ObjectNotFound:
                raise
            except (httpx.HTTPStatusError, *_TRANSIENT) as exc:
                status = getattr(getattr(exc, "response", None), "status_code", None)
                if status is not None and status < 500 and status != 429:
                    raise
                raise SubmitError(f"{what}: Prefect API unavailable ({exc})") from exc

    @functools.cached_property
    def _prefect_context(self) -> SettingsContext:
        return get_settings_context()

    @functools.cached_property
    def _prefect_settings(self) -> PrefectSettings:
        retries = max(0, self.settings.submit_attempts - 1)
        # the API URL too: Prefect's block API (secrets) makes its own client from the settings context
        updates = {
            PREFECT_CLIENT_MAX_RETRIES: retries,
            PREFECT_API_URL: self.settings.effective_prefect_api_url,
        }
        return self._prefect_context.settings.copy_with_update(updates=updates)

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

    # --- legacy id lookups -------------------------------------------------------------------------
    def find(self, api: str, any_id: str) -> JobRun | None:
        """The newest job of `api` whose legacy id equals `any_id` (dashes ignored), else the newest one
        started from it (its parent id). A legacy id, once mapped, never changes its run, so hits on
        legacy ids are remembered; parent-id hits are not (a newer run may be started from it)."""
        wanted = normalize_id(any_id)
        if not wanted:
            return None
        if (hit := self.known_job(api, wanted)) is not None:
            return hit
        with session_scope() as session:
            rows = session.scalars(
                select(JobRun)
                .where(JobRun.api == api)
                .where(or_(*_id_matches(JobRun.legacy_id, wanted), *_id_matches(JobRun.parent_id, wanted)))
                .order_by(JobRun.created_at.desc(), JobRun.id.desc())
            ).all()
        exact = [r for r in rows if normalize_id(r.legacy_id) == wanted]
        if exact:
            if len(self._found) > 10_000:
                self._found.clear()
            self._found[(api, wanted)] = (time.monotonic(), exact[0])
            return exact[0]
        return next((r for r in rows if r.parent_id and normalize_id(r.parent_id) == wanted), None)

    def known_job(self, api: str, any_id: str) -> JobRun | None:
        """A recent `find` hit on a legacy id, without touching the database (None when not known). Hits
        expire so that a job deleted through another bridge is not served from here for long."""
        hit = self._found.get((api, normalize_id(any_id)))
        if hit and time.monotonic() - hit[0] < self.settings.lookup_cache_seconds:
            return hit[1]
        return None

    def list_jobs(self, api: str) -> list[JobRun]:
        with session_scope() as session:
            return list(session.scalars(select(JobRun).where(JobRun.api == api).order_by(JobRun.id)).all())

    def forget(self, api: str, legacy_id: str) -> None:
        self._found.pop((api, normalize_id(legacy_id)), None)
        with session_scope() as session:
            for row in session.scalars(
                select(JobRun).where(JobRun.api == api, JobRun.legacy_id == legacy_id)
            ):
                session.delete(row)

    # --- reading state back ------------------------------------------------------------------------
    def status(self, run_id: UUID | str, *, fresh: bool = False) -> JobStatus:
        """A run's status, reused for FLOWBRIDGE_STATUS_CACHE_SECONDS. Concurrent pollers of one run share
        one read from Prefect, so 50 clients polling a job cost one API call per cache period."""
        return self._statuses.get(UUID(str(run_id)), fresh=fresh)

    def peek_status(self, run_id: UUID | str) -> JobStatus | None:
        """The status without any I/O (see api_bridge/cache.py), or None when the caller must call
        `status` off the event loop. It is at most twice the cache period old."""
        return self._statuses.peek(UUID(str(run_id)))

    def has_result(self, run_id: UUID | str, relpath: str, *, cached_only: bool = False) -> bool:
        """Whether a finished run's file exists in storage. A run's files are written before it completes
        and never change afterwards, so a yes is remembered; `cached_only` answers from memory alone."""
        key = (UUID(str(run_id)), relpath)
        if key in self._present:
            return True
        if cached_only:
            return False
        storage = get_storage()
        if not storage.exists(storage.run_path(str(key[0]), relpath)):
            return False
        if len(self._present) > 100_000:
            self._present.clear()
        self._present.add(key)
        return True

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
        found = {run.id: _to_status(run, latest.get(run.id)) for run in runs}
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
        return _to_status(run, artifacts[0] if artifacts else None)

    def logs(
        self, run_id: UUID | str, *, offset: int = 0, limit: int = 200, min_level: int = 0
    ) -> list[LogLine]:
        """The run's log lines, oldest first, each named by the task that wrote it (or 'flow')."""
        return self._read_logs(self._run_family(UUID(str(run_id)), False), offset, limit, min_level)

    def count_logs(self, run_id: UUID | str, *, min_level: int = 0) -> int:
        """Total log lines of a run (the logs API has no count, so page through ids)."""
        return self._count_logs(self._run_family(UUID(str(run_id)), False), min_level)

    def log_page(
        self,
        run_id: UUID | str,
        *,
        offset: int,
        limit: int,
        min_level: int = 0,
        include_subflows: bool = False,
    ) -> tuple[int, list[LogLine]]:
        """(total lines, one page of them). With `include_subflows`, its subflows' lines at any depth are
        merged in, named `<subflow run name>/<task>`; the subflows are looked up once for both."""
        family = self._run_family(UUID(str(run_id)), include_subflows)
        return self._count_logs(family, min_level), self._read_logs(family, offset, limit, min_level)

    def _read_logs(
        self, family: dict[UUID, str | None], offset: int, limit: int, min_level: int
    ) -> list[LogLine]:
        records = self.client.read_logs(
            log_filter=LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=list(family)), level=LogFilterLevel(ge_=min_level)
            ),
            limit=limit,
            offset=offset,
            sort=LogSort.TIMESTAMP_ASC,
        )
        tasks = self._task_names(list(family)) if any(r.task_run_id for r in records) else {}
        return [
            LogLine(
                index=offset + i + 1,
                timestamp=r.timestamp,
                level=_LEVELS.get(r.level, str(r.level)),
                message=r.message,
                component=_component(family.get(r.flow_run_id), tasks.get(r.task_run_id)),
            )
            for i, r in enumerate(records)
        ]

    def _count_logs(self, family: dict[UUID, str | None], min_level: int) -> int:
        total, page = 0, 200
        while True:
            batch = self.client.read_logs(
                log_filter=LogFilter(
                    flow_run_id=LogFilterFlowRunId(any_=list(family)), level=LogFilterLevel(ge_=min_level)
                ),
                limit=page,
                offset=total,
            )
            total += len(batch)
            if len(batch) < page:
                return total

    def _run_family(self, run_id: UUID, include_subflows: bool) -> dict[UUID, str | None]:
        """The run (named None) and, if asked, its subflow runs at any depth, named by run name."""
        from prefect.client.schemas.filters import FlowRunFilterParentFlowRunId

        family: dict[UUID, str | None] = {run_id: None}
        frontier = [run_id] if include_subflows else []
        for _ in range(MAX_SUBFLOW_DEPTH):
            if not frontier:
                break
            children = self.client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=frontier))
            )
            frontier = [c.id for c in children if c.id not in family]
            family.update({c.id: c.name for c in children})
        return family

    def _task_names(self, run_ids: list[UUID]) -> dict[UUID, str]:
        task_runs = self.client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids))
        )
        return {t.id: t.name.rsplit("-", 1)[0] for t in task_runs}

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

    # --- secrets -----------------------------------------------------------------------------------
    def store_secret(self, name: str, value: str) -> None:
        """Keep `value` in a Prefect Secret block (shown obfuscated in the UI) so a flow run receives only
        the block name as a parameter and resolves the value itself. Overwrites a block of that name.

        Prefect's Secret block API registers the block type and schema when missing and saves. On a fresh
        server that registers its block types in the background after it already answers, the first
        secret of its life can collide with that registration (409, or its type read back missing): try
        again shortly; a retried create whose first attempt landed is overwritten by `overwrite=True`.
        """
        from prefect.blocks.system import Secret

        for attempt in range(5):
            try:
                self._with_retries(
                    lambda: Secret(value=value).save(name, overwrite=True), what=f"store secret {name}"
                )
                return
            except (ObjectAlreadyExists, ObjectNotFound):
                time.sleep(0.2 * (attempt + 1))
        raise SubmitError(f"could not store secret {name}: the Prefect server kept answering 409")

    def delete_secret(self, name: str) -> bool:
        """Remove a Secret block; False when there was none (already cleaned up by the flow)."""
        from prefect.blocks.system import Secret

        try:
            self._with_retries(lambda: Secret.delete(name), what=f"delete secret {name}")
        except (ObjectNotFound, ValueError):  # Prefect's "Unable to find block document named …"
            return False
        return True

    # --- results -----------------------------------------------------------------------------------
    def result_files(self, run_id: UUID | str) -> list[StoredFile]:
        return get_storage().list_results(str(run_id))

    def result_summary(self, run_id: UUID | str) -> dict[str, Any] | None:
        return get_storage().read_summary(str(run_id))


def _component(subflow: str | None, task: str | None) -> str:
    """Who wrote a log line: the task, or 'flow'; inside a subflow, prefixed with the subflow's name."""
    own = task or "flow"
    return f"{subflow}/{own}" if subflow else own


def _id_matches(column: Any, wanted: str) -> list[Any]:
    """Match stored ids whether they were stored with dashes or without."""
    from sqlalchemy import func

    return [func.lower(func.replace(column, "-", "")) == wanted]


def _to_status(run: FlowRun, artifact: Any | None) -> JobStatus:
    state = run.state
    state_type = JobState(state.type.value) if state else JobState.PENDING
    detail = decode_description(float(artifact.data or 0), artifact.description) if artifact else None
    percent = detail.percent if detail else 0.0
    completed_steps = detail.completed_steps if detail else None
    total_steps = detail.total_steps if detail else None
    if state_type is JobState.COMPLETED:
        percent = 100.0
    else:
        # the flow reports its last step done a moment before Prefect records the run Completed;
        # until then a job is not finished, whatever the artifact says
        percent = min(percent, 99.0)
        if completed_steps is not None and total_steps:
            completed_steps = min(completed_steps, total_steps - 1)
    return JobStatus(
        run_id=run.id,
        state=state_type,
        state_name=state.name if state else "Pending",
        message=state.message if state else None,
        percent=percent,
        stage=detail.stage if detail else None,
        completed_steps=completed_steps,
        total_steps=total_steps,
        stage_message=detail.message if detail else None,
        created=run.created,
        started=run.start_time,
        ended=run.end_time,
        parameters=dict(run.parameters or {}),
        tags=tuple(run.tags or ()),
        flow_run_name=run.name,
        deployment_id=run.deployment_id,
    )


_gateway: JobGateway | None = None
_gateway_lock = threading.Lock()


def get_gateway() -> JobGateway:
    """One gateway per bridge process (FastAPI dependency)."""
    global _gateway
    with _gateway_lock:
        if _gateway is None:
            _gateway = JobGateway()
        return _gateway
