"""Shipping a flow run's log lines to Prefect before the run tells a client it is done."""

from __future__ import annotations

import contextlib

from prefect.logging.handlers import APILogWorker


def flush_run_logs(timeout: float = 5.0) -> None:
    """Send the queued log lines now. Prefect's log worker ships them in batches every few hundred
    milliseconds, so a client that sees "done" could otherwise read a log missing the last step's lines.
    Best effort: a finished run never fails over its log shipping."""
    with contextlib.suppress(Exception):
        APILogWorker.drain_all(timeout=timeout)  # what APILogHandler.flush() does outside an event loop
