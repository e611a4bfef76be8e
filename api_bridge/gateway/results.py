"""A finished job's files in storage under runs/<flow run id>/ (written before the run completes)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from api_bridge.gateway.connection import PrefectConnection
from storage.filesystems import StoredFile, get_storage


class Results(PrefectConnection):
    """Result files, the summary, and whether a file exists (remembered once seen)."""

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

    def result_files(self, run_id: UUID | str) -> list[StoredFile]:
        return get_storage().list_results(str(run_id))

    def result_summary(self, run_id: UUID | str) -> dict[str, Any] | None:
        return get_storage().read_summary(str(run_id))
