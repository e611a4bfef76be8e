"""The legacy-id map: which flow run answers a legacy id (records: storage/jobs.py; a lookup cache here)."""

from __future__ import annotations

import time
from uuid import UUID

from api_bridge.gateway.connection import PrefectConnection
from storage.jobs import JobRun, forget_job, jobs_matching, list_jobs, normalize_id, record_job


class LegacyIds(PrefectConnection):
    """Record, find and forget legacy ids."""

    def record(self, *, api: str, legacy_id: str, parent_id: str | None, job_type: str, run_id: UUID) -> None:
        record_job(api=api, legacy_id=legacy_id, parent_id=parent_id, job_type=job_type, run_id=str(run_id))

    def find(self, api: str, any_id: str) -> JobRun | None:
        """The newest job of `api` whose legacy id equals `any_id` (dashes ignored), else the newest one
        started from it (its parent id). A legacy id, once mapped, never changes its run, so hits on
        legacy ids are remembered; parent-id hits are not (a newer run may be started from it)."""
        wanted = normalize_id(any_id)
        if not wanted:
            return None
        if (hit := self.known_job(api, wanted)) is not None:
            return hit
        rows = jobs_matching(api, wanted)
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
        return list_jobs(api)

    def forget(self, api: str, legacy_id: str) -> None:
        self._found.pop((api, normalize_id(legacy_id)), None)
        forget_job(api, legacy_id)
