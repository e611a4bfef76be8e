"""The job gateway: the only place the bridge talks to Prefect.

Routers translate their legacy ids and codes and call this; they never import `prefect`. A job is a
Prefect flow run of a registered deployment. Its state, progress (one progress artifact), logs and
times are read back from the Prefect API; its files from storage under `runs/<flow run id>/`; the map
from legacy ids to flow runs from the metadata DB. Nothing here lives only in process memory except a
sub-second status cache, so any number of bridges can run and restart freely.

One facade, `JobGateway`, over one module per concern: the Prefect connection and its retry layer
(connection), runs (submit, state, cancel), logs, the legacy-id map, schedules, secrets and result files.
"""

from __future__ import annotations

import threading

from api_bridge.gateway.legacy_ids import LegacyIds
from api_bridge.gateway.logs import Logs
from api_bridge.gateway.results import Results
from api_bridge.gateway.runs import Runs
from api_bridge.gateway.schedules import Schedules
from api_bridge.gateway.secrets import Secrets
from api_bridge.gateway.status import JobNotFound, JobStatus, LogLine, SubmitError
from storage.jobs import JobState, normalize_id

__all__ = [
    "JobGateway",
    "JobNotFound",
    "JobState",
    "JobStatus",
    "LogLine",
    "SubmitError",
    "get_gateway",
    "normalize_id",
]


class JobGateway(Runs, Logs, LegacyIds, Schedules, Secrets, Results):
    """Everything a router asks of Prefect and of the legacy-id map, behind one object per process."""


_gateway: JobGateway | None = None
_gateway_lock = threading.Lock()


def get_gateway() -> JobGateway:
    """One gateway per bridge process (FastAPI dependency)."""
    global _gateway
    with _gateway_lock:
        if _gateway is None:
            _gateway = JobGateway()
        return _gateway
