"""The embedded Prefect server: `prefect server start`, with SQLite writes that queue instead of failing.

Prefect 3.8 opens its SQLite write transactions as `BEGIN DEFERRED` (IMMEDIATE only for SELECT … FOR
UPDATE). A deferred transaction that has read and then writes while another connection writes gets
SQLITE_BUSY at once, without waiting on the busy timeout (SQLite's deadlock rule), and the API answers 503
"database is locked"; its client then backs off 2, 4, 8 s. Under a burst of short jobs (state changes,
events, the zombie automation's buckets) that made the `make run` server spend most of its time idle in
those back-offs. Beginning every write transaction IMMEDIATE takes the write lock up front, so writers queue
on the busy timeout (Prefect's 60 s) instead: same data, no 503s. PostgreSQL is not affected.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any


def immediate_sqlite_writes() -> None:
    from prefect.server.database.configurations import AioSqliteConfiguration

    deferred = AioSqliteConfiguration.begin_transaction

    @asynccontextmanager
    async def begin_transaction(
        self: Any, session: Any, with_for_update: bool = False
    ) -> AsyncGenerator[Any]:
        async with deferred(self, session, with_for_update=True) as transaction:
            yield transaction

    AioSqliteConfiguration.begin_transaction = begin_transaction  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    """`python -m flowbridge.prefect_server [prefect server start options]`."""
    from prefect.cli import app

    immediate_sqlite_writes()
    sys.argv = ["prefect", "server", "start", *(sys.argv[1:] if argv is None else argv)]
    result = app()
    return int(result or 0) if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
