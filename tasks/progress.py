"""Stage and step progress of a flow run, kept in one Prefect progress artifact.

Every legacy progress field (000's "NN%", GasFlux's stage/steps/ETA, DataFlow's 0–100) is computed from
this one artifact, so it survives a bridge restart and shows in the Prefect UI. The artifact's progress
is the percentage; its description is a human line for the UI plus a JSON comment the bridge parses.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import FlowRunContext
from prefect.exceptions import MissingContextError

_DETAIL = re.compile(r"<!--\s*flowbridge-progress\s*(\{.*?\})\s*-->", re.S)


@dataclass(frozen=True)
class ProgressDetail:
    percent: float
    stage: str | None = None
    completed_steps: int | None = None
    total_steps: int | None = None
    message: str | None = None


def encode_description(detail: ProgressDetail) -> str:
    human = f"**{detail.stage or 'starting'}** ({detail.completed_steps or 0}/{detail.total_steps or 0})"
    if detail.message:
        human += f" — {detail.message}"
    payload = {
        "stage": detail.stage,
        "completed_steps": detail.completed_steps,
        "total_steps": detail.total_steps,
        "message": detail.message,
    }
    return f"{human}\n\n<!-- flowbridge-progress {json.dumps(payload, ensure_ascii=False)} -->"


def decode_description(percent: float, description: str | None) -> ProgressDetail:
    match = _DETAIL.search(description or "")
    data: dict[str, Any] = json.loads(match.group(1)) if match else {}
    return ProgressDetail(
        percent=float(percent),
        stage=data.get("stage"),
        completed_steps=data.get("completed_steps"),
        total_steps=data.get("total_steps"),
        message=data.get("message"),
    )


class Progress:
    """A flow's progress reporter: named stages, each a share of the run, and a fraction within a stage.

    The percentage never decreases, and updates inside a stage are throttled so a tight loop does not
    flood the API. Outside a flow run (unit tests, in-process benchmarks) it records nothing remotely.

    With `background=True` the API calls go out from one thread (see `_Sender`), so a short step never
    waits on a Prefect round trip; call `close()` before the run ends to deliver the last state.
    """

    def __init__(
        self,
        stages: Sequence[str],
        *,
        min_interval: float = 0.5,
        background: bool = False,
        settle: float = 0.0,
    ) -> None:
        if not stages:
            raise ValueError("a progress needs at least one stage")
        self.stages = list(stages)
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._percent = 0.0
        self._stage_index = -1
        self._last_sent = 0.0
        self._artifact_id = None
        self._sender: _Sender | None = None
        self._message: str | None = None
        self.remote = FlowRunContext.get() is not None
        if self.remote:
            description = encode_description(self.detail)
            if background:
                self._sender = _Sender(description, settle)
            else:
                self._artifact_id = create_progress_artifact(progress=0.0, description=description)

    @property
    def detail(self) -> ProgressDetail:
        stage = self.stages[self._stage_index] if self._stage_index >= 0 else None
        return ProgressDetail(
            percent=self._percent,
            stage=stage,
            completed_steps=max(self._stage_index, 0),
            total_steps=len(self.stages),
            message=self._message,
        )

    def stage(self, name: str, message: str | None = None) -> None:
        """Enter stage `name` (the stages before it count as completed)."""
        index = self.stages.index(name)
        with self._lock:
            self._stage_index = max(self._stage_index, index)
            self._message = message
            self._set(100.0 * index / len(self.stages), force=True)

    def advance(self, fraction: float, message: str | None = None) -> None:
        """Report `fraction` (0..1) of the current stage done."""
        with self._lock:
            index = max(self._stage_index, 0)
            if message is not None:
                self._message = message
            fraction = min(max(fraction, 0.0), 1.0)
            self._set(100.0 * (index + fraction) / len(self.stages), force=False)

    def finish(self, message: str | None = None) -> None:
        with self._lock:
            self._stage_index = len(self.stages) - 1
            self._message = message
            self._percent = 100.0
            self._send(force=True, steps_done=len(self.stages))

    def _set(self, percent: float, *, force: bool) -> None:
        self._percent = max(self._percent, min(percent, 99.0))
        self._send(force=force)

    def _send(self, *, force: bool, steps_done: int | None = None) -> None:
        now = time.monotonic()
        if not self.remote or (not force and now - self._last_sent < self.min_interval):
            return
        detail = self.detail
        if steps_done is not None:
            detail = ProgressDetail(
                detail.percent, detail.stage, steps_done, detail.total_steps, detail.message
            )
        if self._sender is not None:
            self._sender.post(detail.percent, encode_description(detail))
        else:
            update_progress_artifact(
                self._artifact_id, progress=detail.percent, description=encode_description(detail)
            )
        self._last_sent = now

    def close(self, timeout: float = 30.0) -> None:
        """Wait (bounded) until a background progress has delivered its last state; no-op otherwise."""
        if self._sender is not None:
            self._sender.close(timeout)


class _Sender:
    """One thread, in the flow run's context, that creates the progress artifact and then sends the latest
    posted state. States posted while a call is in flight replace each other: the percentage only grows,
    so skipping one is never reordering. `settle` seconds of waiting for a successor merge a short last
    stage and its finish into one call. A failing call is a warning: progress is a view of the run, the
    run's state is the record."""

    def __init__(self, description: str, settle: float) -> None:
        self._settle = settle
        self._changed = threading.Condition()
        self._latest: tuple[float, str] | None = None
        self._closed = False
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run, description), name="progress", daemon=True
        )
        self._thread.start()

    def post(self, percent: float, description: str) -> None:
        with self._changed:
            self._latest = (percent, description)
            self._changed.notify()

    def close(self, timeout: float) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join(timeout)

    def _run(self, description: str) -> None:
        try:
            artifact_id = create_progress_artifact(progress=0.0, description=description)
            while True:
                with self._changed:
                    while self._latest is None and not self._closed:
                        self._changed.wait()
                    settled = time.monotonic() + self._settle
                    while not self._closed and (left := settled - time.monotonic()) > 0:
                        self._changed.wait(left)
                    update, self._latest = self._latest, None
                if update is None:
                    return
                update_progress_artifact(artifact_id, progress=update[0], description=update[1])
        except Exception as exc:
            _warn(f"progress not reported: {type(exc).__name__}: {exc}")


def _warn(message: str) -> None:
    try:
        get_run_logger().warning(message)
    except MissingContextError:
        logging.getLogger("flowbridge.progress").warning(message)
