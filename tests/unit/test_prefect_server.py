"""The embedded Prefect server's SQLite writes begin IMMEDIATE, so concurrent writers queue on the busy
timeout instead of failing with "database is locked" (503)."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any

import pytest
from prefect.server.database import configurations

from flowbridge.prefect_server import immediate_sqlite_writes


class _Session:
    """Records the BEGIN mode Prefect's SQLite configuration would emit when the transaction opens."""

    def __init__(self) -> None:
        self.modes: list[str | None] = []

    @asynccontextmanager
    async def begin(self) -> Any:
        self.modes.append(configurations.SQLITE_BEGIN_MODE.get())
        yield self


def _modes() -> list[str | None]:
    session = _Session()
    config = configurations.AioSqliteConfiguration.__new__(configurations.AioSqliteConfiguration)

    async def open_both() -> None:
        async with config.begin_transaction(session):  # type: ignore[arg-type]
            pass
        async with config.begin_transaction(session, with_for_update=True):  # type: ignore[arg-type]
            pass

    asyncio.run(open_both())
    return session.modes


def test_every_sqlite_write_transaction_begins_immediate(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _modes() == ["DEFERRED", "IMMEDIATE"]  # Prefect's own behaviour
    monkeypatch.setattr(
        configurations.AioSqliteConfiguration,
        "begin_transaction",
        configurations.AioSqliteConfiguration.begin_transaction,
    )
    immediate_sqlite_writes()
    assert _modes() == ["IMMEDIATE", "IMMEDIATE"]
