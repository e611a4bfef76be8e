"""The gateway's connection to Prefect: one client per bridge process, one retry layer (the client's own),
deployment ids by job type, and the caches every part of the gateway shares."""

from __future__ import annotations

import functools
import threading
from typing import Any
from uuid import UUID

import httpx
from prefect.client.orchestration import SyncPrefectClient
from prefect.context import SettingsContext, get_settings_context
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES
from prefect.settings import Settings as PrefectSettings

from api_bridge.cache import RefreshingCache
from api_bridge.gateway.status import JobStatus, SubmitError
from flowbridge.settings import Settings, get_settings
from flows.registry import get_job_type
from storage.jobs import JobRun

_TRANSIENT = (httpx.TransportError, httpx.TimeoutException)


class PrefectConnection:
    """State shared by the gateway's parts; each part is a mixin over this."""

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
        return self._prefect_context.settings.copy_with_update(updates={PREFECT_CLIENT_MAX_RETRIES: retries})

    def _read_status(self, run_id: UUID) -> JobStatus:
        raise NotImplementedError  # the runs part reads statuses
