"""flush_run_logs drains Prefect's log worker and nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import pytest
from prefect._internal.concurrency.services import QueueService
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL, temporary_settings

from tasks.run_logs import flush_run_logs


class _Collector(QueueService[int]):
    """Stands in for Prefect's events worker: another queue service of the same process."""

    handled: ClassVar[list[int]] = []

    async def _handle(self, item: int) -> None:
        self.handled.append(item)


@pytest.fixture()
def api() -> Iterator[None]:
    # no server answers: the log queue is empty, so the worker never calls it
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        yield


def test_only_the_log_worker_is_drained(api: None) -> None:
    log_worker = APILogWorker.instance()
    other = _Collector.instance()
    flush_run_logs(timeout=10)
    assert APILogWorker.instance() is not log_worker  # the drained worker was stopped and is replaced
    other.send(1)  # still running: a stopped service refuses items
    other.drain()
    assert _Collector.handled == [1]
