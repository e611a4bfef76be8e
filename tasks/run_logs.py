"""Shipping a flow run's log lines to Prefect before the run tells a client it is done."""

from __future__ import annotations

import threading
from collections.abc import Callable

from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_LOGGING_TO_API_ENABLED


def start_log_flush(timeout: float = 5.0) -> Callable[[], None]:
    """Start sending the queued log lines now and return the wait for them (at most `timeout` seconds),
    so the caller can do other work meanwhile. Prefect's log worker ships them in batches every few
    hundred milliseconds, so a client that sees "done" could otherwise read a log missing the last
    step's lines.

    Only the log worker is drained: `APILogWorker.drain_all` (what `APILogHandler.flush` calls) stops
    every Prefect queue service, the events worker too, which must then reconnect (a new API client and
    websocket, about 0.1 s) to send the run's last task and flow events. Best effort: a finished run
    never fails, or waits long, over its log shipping."""
    if not PREFECT_LOGGING_TO_API_ENABLED.value():
        return lambda: None
    try:
        worker = APILogWorker.instance()
        drained = threading.Thread(target=worker.drain, name="flush-run-logs", daemon=True)
        drained.start()
    except Exception:
        return lambda: None
    return lambda: drained.join(timeout)


def flush_run_logs(timeout: float = 5.0) -> None:
    """Send the queued log lines and wait for them (see `start_log_flush`)."""
    start_log_flush(timeout)()
