"""A job's log lines read back from Prefect, each named by the task (and subflow) that wrote it."""

from __future__ import annotations

from uuid import UUID

from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
    LogFilterLevel,
)
from prefect.client.schemas.sorting import LogSort

from api_bridge.gateway.connection import PrefectConnection
from api_bridge.gateway.status import LogLine

MAX_SUBFLOW_DEPTH = 10
_LEVELS = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}


class Logs(PrefectConnection):
    """Pages and counts of a run's logs, its subflows' merged in on request."""

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


def _component(subflow: str | None, task: str | None) -> str:
    """Who wrote a log line: the task, or 'flow'; inside a subflow, prefixed with the subflow's name."""
    own = task or "flow"
    return f"{subflow}/{own}" if subflow else own
