"""Removing one GasFlux task: its flow run, run files, upload and records.

DELETE /task/{id} and the periodic cleanup flow remove exactly the same things through `remove_task`.
Who deletes the flow run is passed in (`RunRemover`): the bridge passes its job gateway, which also
drops its caches; the cleanup flow passes `PrefectRunRemover`, which talks to the Prefect API directly,
so nothing here depends on the bridge.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from prefect import get_client
from prefect.exceptions import ObjectNotFound

from storage.filesystems import get_storage
from storage.gasflux import repository
from storage.jobs import JobState, forget_job

API = "gasflux"  # the legacy-id map's name for the 002 API


class RunRemover(Protocol):
    def delete(self, run_id: UUID | str) -> int: ...

    def forget(self, api: str, legacy_id: str) -> None: ...


@dataclass(frozen=True)
class Removed:
    folders_deleted: int
    total_size_deleted: int


class PrefectRunRemover:
    """Deletes flow runs through the Prefect API of the current settings (inside a flow run)."""

    def delete(self, run_id: UUID | str) -> int:
        freed = get_storage().delete_run(str(run_id))
        with get_client(sync_client=True) as client, contextlib.suppress(ObjectNotFound):
            client.delete_flow_run(UUID(str(run_id)))
        return freed

    def forget(self, api: str, legacy_id: str) -> None:
        forget_job(api, legacy_id)

    def state(self, run_id: str) -> JobState | None:
        """The run's state, or None when the run is gone."""
        with get_client(sync_client=True) as client:
            try:
                run = client.read_flow_run(UUID(run_id))
            except ObjectNotFound:
                return None
        return JobState.of(run.state)


def remove_task(runs: RunRemover, job_id: str, flow_run_id: str, upload_dir: str) -> Removed:
    """Delete a task's flow run, run folder, upload folder and rows; OSError propagates to the caller."""
    storage = get_storage()
    folders = 0
    freed = 0
    if storage.exists(storage.run_dir(flow_run_id)):
        folders += 1
    freed += runs.delete(flow_run_id)
    upload = storage.path(upload_dir)
    if storage.exists(upload):
        folders += 1
        freed += storage.delete(upload)
    runs.forget(API, job_id)
    repository.delete_task(job_id)
    return Removed(folders, freed)
