"""Request statistics, the request log and the task census behind GasFlux's /health and /stats.

Decisions (see the README):
- Request counters are per bridge process, in memory: they describe the traffic this process served,
  cost nothing to update, and keep /health answerable from memory. With several bridges each /stats
  shows its own process (the document's service was one process too). POST /stats/reset resets the
  answering process.
- Task counts are job state, so they come from Prefect (through the gateway) and the metadata DB, never
  from memory; a census is refreshed in a worker thread at most every `CENSUS_SECONDS` and /health
  answers from the last one (stale-while-revalidate), so it stays fast however slow Prefect is.
- Timing, counting and the log line come from a route class on the GasFlux router (`GasfluxRoute`), so
  exactly the GasFlux paths are measured and other APIs pay nothing. It also applies the document's
  GASFLUX_CONNECTION_LIMIT (503 beyond it) and GASFLUX_CHANNEL_TIMEOUT (504); GASFLUX_CORS_ORIGINS is
  Starlette's CORSMiddleware on the GasFlux paths (api_bridge/app.py), preflights included.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from flowbridge.settings import get_settings
from tasks.gasflux.log_file import gasflux_file_logger

CENSUS_SECONDS = 2.0
MAX_ENDPOINT_KEYS = 5000
_PROCESS_STARTED = time.time()


# --- request counters ----------------------------------------------------------------------------------
@dataclass
class RequestStats:
    """This process's GasFlux request counters since start or the last reset."""

    since: float = field(default_factory=time.time)
    total: int = 0
    errors: int = 0
    by_method: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    by_endpoint: Counter[str] = field(default_factory=Counter)
    time_total: float = 0.0
    time_min: float | None = None
    time_max: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, method: str, path: str, status: int, seconds: float) -> None:
        # /health answering 503 reports a problem rather than being one; counting it would keep the
        # error rate above the limit for as long as anything polls /health
        error = status >= 400 and not (path == "/health" and status == 503)
        with self.lock:
            self.total += 1
            self.errors += error
            self.by_method[method] += 1
            self.by_status[str(status)] += 1
            if path in self.by_endpoint or len(self.by_endpoint) < MAX_ENDPOINT_KEYS:
                self.by_endpoint[path] += 1
            self.time_total += seconds
            self.time_min = seconds if self.time_min is None else min(self.time_min, seconds)
            self.time_max = max(self.time_max, seconds)

    def reset(self) -> float:
        with self.lock:
            fresh = RequestStats()
            for name in ("since", "total", "errors", "by_method", "by_status", "by_endpoint"):
                setattr(self, name, getattr(fresh, name))
            self.time_total, self.time_min, self.time_max = 0.0, None, 0.0
            return self.since

    @property
    def error_rate_percent(self) -> float:
        return round(100.0 * self.errors / self.total, 2) if self.total else 0.0

    @property
    def avg_ms(self) -> float:
        return round(1000.0 * self.time_total / self.total, 2) if self.total else 0.0

    @property
    def per_second(self) -> float:
        return round(self.total / max(time.time() - self.since, 1e-6), 4)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests_total": self.total,
                "requests_per_second": self.per_second,
                "error_rate_percent": self.error_rate_percent,
                "by_method": dict(self.by_method),
                "by_status": dict(sorted(self.by_status.items())),
                "top_endpoints": dict(self.by_endpoint.most_common(10)),
                "avg_response_time_ms": self.avg_ms,
                "max_response_time_ms": round(1000.0 * self.time_max, 2),
                "min_response_time_ms": round(1000.0 * (self.time_min or 0.0), 2),
            }


STATS = RequestStats()


def uptime_seconds() -> float:
    return round(time.time() - _PROCESS_STARTED, 2)


def format_uptime(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}h {whole % 3600 // 60}m {whole % 60}s"


# --- the route class ("middleware" limited to the GasFlux router) --------------------------------------
class _Limits:
    in_flight = 0


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, HTTPException):
        return exc.status_code
    if isinstance(exc, RequestValidationError):
        return 400
    return 500


Envelope = Callable[[int, str], Response]


def make_route_class(envelope: Envelope, busy: str, timeout: str) -> type[APIRoute]:
    """An APIRoute that counts, times and logs each GasFlux request and applies the server limits."""

    class GasfluxRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def timed(request: Request) -> Response:
                settings = get_settings()
                started = time.perf_counter()
                status = 500
                try:
                    if _Limits.in_flight >= settings.gasflux_connection_limit:
                        response = envelope(503, busy.format(settings.gasflux_connection_limit))
                    else:
                        _Limits.in_flight += 1
                        try:
                            async with asyncio.timeout(settings.gasflux_channel_timeout):
                                response = await handler(request)
                        except TimeoutError:
                            response = envelope(504, timeout.format(settings.gasflux_channel_timeout))
                        finally:
                            _Limits.in_flight -= 1
                    status = response.status_code
                    return response
                except BaseException as exc:
                    status = _status_of(exc)
                    raise
                finally:
                    elapsed = time.perf_counter() - started
                    path = request.url.path
                    STATS.record(request.method, path, status, elapsed)
                    task_id = getattr(request.state, "gasflux_task_id", None)
                    prefix = f"[task:{task_id}] " if task_id else ""
                    gasflux_file_logger().info(
                        "%s%s %s - %d - %.2fs", prefix, request.method, path, status, elapsed
                    )

            return timed

    return GasfluxRoute


# --- task census ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskCensus:
    taken_at: float
    by_status: dict[str, int]
    total_tracked: int
    recent: list[dict[str, Any]]
    error: str | None = None

    @property
    def active(self) -> int:
        return self.by_status.get("pending", 0) + self.by_status.get("processing", 0)

    @property
    def completed(self) -> int:
        return self.by_status.get("completed", 0)

    @property
    def failed(self) -> int:
        return self.by_status.get("failed", 0)

    @property
    def success_rate_percent(self) -> float:
        done = self.completed + self.failed
        return round(100.0 * self.completed / done, 2) if done else 0.0


@dataclass(frozen=True)
class StorageProbe:
    uploads_writable: bool
    outputs_writable: bool


class Monitor:
    """Caches the task census and the storage probe; refreshes them off the request path."""

    def __init__(self, take_census: Callable[[], TaskCensus], probe: Callable[[], StorageProbe]) -> None:
        self._take_census = take_census
        self._probe = probe
        self._lock = threading.Lock()
        self._census: TaskCensus | None = None
        self._storage: StorageProbe | None = None
        self._refreshing: asyncio.Task[None] | None = None

    def _refresh(self) -> None:
        if not self._lock.acquire(blocking=False):
            with self._lock:  # another thread is refreshing; wait for it and use its result
                return
        try:
            self._storage = self._probe()
            self._census = self._take_census()
        finally:
            self._lock.release()

    async def current(
        self, max_age: float = CENSUS_SECONDS, *, wait: bool = False
    ) -> tuple[TaskCensus, StorageProbe]:
        """The cached census; older than `max_age` starts a refresh (awaited if `wait` or none yet)."""
        census = self._census
        stale = census is None or time.time() - census.taken_at > max_age
        if stale and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.ensure_future(run_in_threadpool(self._refresh))
        if (census is None or (stale and wait)) and self._refreshing is not None:
            await asyncio.shield(self._refreshing)
        assert self._census is not None and self._storage is not None
        return self._census, self._storage

    def invalidate(self) -> None:
        if self._census is not None:
            self._census = TaskCensus(
                0.0, self._census.by_status, self._census.total_tracked, self._census.recent
            )
