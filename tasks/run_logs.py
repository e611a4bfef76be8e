"""Shipping a flow run's log lines to Prefect before the run tells a client it is done."""

from __future__ import annotations

import contextlib
import threading

from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_LOGGING_TO_API_ENABLED


def flush_run_logs(timeout: float = 5.0) -> None:
    """Send the queued log lines now. Prefect's log worker ships them in batches every few hundred
    milliseconds, so a client that sees "done" could otherwise read a log missing the last step's lines.

    Only the log worker is drained: `APILogWorker.drain_all` (what `APILogHandler.flush` calls) stops
    every Prefect queue service, the events worker too, which must then reconnect (a new API client and
    websocket, about 0.1 s) to send the run's last task and flow events. Best effort and bounded: a
    finished run never fails, or waits long, over its log shipping."""
    if not PREFECT_LOGGING_TO_API_ENABLED.value():
        return
    with contextlib.suppress(Exception):
        worker = APILogWorker.instance()
        drained = threading.Thread(target=worker.drain, name="flush-run-logs", daemon=True)
        drained.start()
        drained.join(timeout)
