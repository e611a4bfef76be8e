"""One run per dataflow at a time, held by a Prefect global concurrency limit (issue 14, item 2).

Each dataflow record has a global concurrency limit of 1 named after its run key (`dataflow-run:<key>`,
`dataflow:<id>` for records from before run keys). A top-level run takes the slot without waiting
(`max_retries=0`: a second run is refused, not queued — the legacy API answers 409 for it anyway),
holds it under a lease renewed in the background for the run's duration, and gives it back however the
run ends:

- completed, failed, cancelled from inside the run: `DataflowSlot.release` in the flow's `finally`;
- the run's process killed (OOM, SIGKILL): the runner marks the run Crashed and runs the flow's
  `on_crashed` hook, which releases the lease whose id the run put in its labels (`LEASE_LABEL`);
- the whole runner gone too (nobody to run a hook): nobody renews the lease, and Prefect's repossessor
  frees the slot once it expires (`FLOWBRIDGE_DATAFLOW_LEASE_SECONDS`, at least Prefect's 60 s, plus the
  repossessor's 15 s loop).

The slot is taken by the server in one transaction, so runs racing from two bridges, a schedule and an
execute, or two runners cannot both hold it: the check-then-act of reading the running runs is gone.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.concurrency._leases import maintain_concurrency_lease
from prefect.exceptions import ObjectAlreadyExists

from flowbridge.settings import get_settings
from tasks.dataflow.config import KEY_TAG, RUN_TAG
from tasks.dataflow.steps import DataflowError

log = logging.getLogger("flowbridge.dataflow")
LEASE_LABEL = "flowbridge.dataflow.lease"
MIN_LEASE_SECONDS = 60  # Prefect's server refuses shorter leases


class DataflowBusy(DataflowError):
    """Another run of this dataflow holds its slot: this run is skipped (the message says so)."""


def limit_name(dataflow_id: int, run_key: str | None) -> str:
    """The dataflow's limit: named like the tag that finds its runs, so an operator can tell them apart."""
    return KEY_TAG.format(key=run_key) if run_key else RUN_TAG.format(id=dataflow_id)


def ensure_limit(client: Any, name: str) -> None:
    """Create the limit of 1 unless it exists (runs racing to create it: one wins, the rest get 409)."""
    with contextlib.suppress(ObjectAlreadyExists):
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))


def release_lease(client: Any, lease_id: str | UUID) -> None:
    """Give back a lease's slot; a lease already released or expired is a no-op on the server."""
    client.release_concurrency_slots_with_lease(UUID(str(lease_id)))


def release_crashed(flow: Any, flow_run: Any, state: Any) -> None:
    """`on_crashed` hook (run by the runner after the run's process died): free the slot it held now,
    rather than after the lease expires."""
    with get_client(sync_client=True) as client:
        # the runner's copy of the run is from before the run labelled itself: read it again
        lease_id = (client.read_flow_run(flow_run.id).labels or {}).get(LEASE_LABEL)
        if not lease_id:
            return
        release_lease(client, lease_id)
    log.info("dataflow run %s crashed: its concurrency slot (lease %s) is released", flow_run.name, lease_id)


class DataflowSlot:
    """The slot of one dataflow, taken on a background thread and held until `release`.

    A top-level run needs it; a child running as its parent's subflow takes it when it is free (so a
    top-level run of the child is refused meanwhile, as before) but goes on when it is not, because the
    parent's run must not fail for a child being run on its own.

    `claim` is resolved once the slot is held (None) or refused (DataflowBusy): the run overlaps the
    acquisition with loading the dataflow and writes nothing before it has passed.
    """

    def __init__(
        self,
        dataflow_id: int,
        run_key: str | None,
        flow_run_id: UUID | str | None,
        prepare: Callable[[], None] | None = None,
        *,
        optional: bool = False,
    ) -> None:
        self.dataflow_id = dataflow_id
        self.prepare = prepare
        self.optional = optional  # a child's subflow: takes the slot when free, runs anyway when not
        self.name = limit_name(dataflow_id, run_key)
        self.flow_run_id = flow_run_id
        self.lease_seconds = max(MIN_LEASE_SECONDS, get_settings().dataflow_lease_seconds)
        self.claim: Future[None] = Future()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, context_run: Any = None) -> DataflowSlot:
        """Start taking the slot; `context_run` (a Context's `run`) keeps the flow run's context."""

        def target() -> None:
            if context_run is not None:
                context_run(self._hold)
            else:
                self._hold()

        self._thread = threading.Thread(target=target, name=f"dataflow-slot-{self.dataflow_id}", daemon=True)
        self._thread.start()
        return self

    def release(self, timeout: float = 30) -> None:
        """Stop renewing and give the slot back (or, if it was never taken, nothing)."""
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _hold(self) -> None:
        try:
            if self.prepare is not None:
                self.prepare()
            with get_client(sync_client=True) as client:
                try:
                    lease_id = self._acquire(client)
                except DataflowBusy:
                    if not self.optional:
                        raise
                    self.claim.set_result(None)
                    return
                try:
                    if self.flow_run_id is not None:
                        client.update_flow_run_labels(
                            UUID(str(self.flow_run_id)), {LEASE_LABEL: str(lease_id)}
                        )
                except BaseException:
                    release_lease(client, lease_id)
                    raise
                self.claim.set_result(None)
                try:
                    with maintain_concurrency_lease(lease_id, self.lease_seconds):
                        self._done.wait()
                finally:
                    release_lease(client, lease_id)
        except BaseException as exc:
            if not self.claim.done():
                self.claim.set_exception(exc)
            else:
                log.warning("dataflow %s: giving back its slot failed: %s", self.dataflow_id, exc)

    def _acquire(self, client: Any) -> UUID:
        ensure_limit(client, self.name)
        holder = (
            ConcurrencyLeaseHolder(type="flow_run", id=UUID(str(self.flow_run_id)))
            if self.flow_run_id
            else None
        )
        try:
            response = client.increment_concurrency_slots_with_lease(
                names=[self.name],
                slots=1,
                mode="concurrency",
                lease_duration=self.lease_seconds,
                holder=holder,
            )
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 423:  # locked: another run holds the slot
                raise DataflowBusy(
                    f"dataflow {self.dataflow_id} is already running (another run holds its concurrency "
                    f"slot {self.name}); this run is skipped"
                ) from None
            raise
        return UUID(response.json()["lease_id"])
