"""A read-through cache for what legacy clients poll: run statuses, task rows.

Entries are reused for `ttl` seconds. Between `ttl` and `max_stale` a reader still gets the previous value
at once while one background thread reloads it, so a steadily polled entry never makes a request wait for
the Prefect API or the database; an entry older than `max_stale` is reloaded in the caller's thread. One
load per key runs at a time (single flight), whoever started it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

log = logging.getLogger("flowbridge.cache")
_BACKGROUND = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cache-refresh")


class RefreshingCache(Generic[K, V]):
    def __init__(
        self,
        load: Callable[[K], V],
        *,
        ttl: Callable[[], float],
        max_stale: Callable[[], float],
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock` tells the age of entries (seconds, monotonic); tests pass a fake one instead of sleeping."""
        self._load = load
        self._clock = clock
        self._ttl = ttl
        self._max_stale = max_stale
        self._max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}
        self._locks: dict[K, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def peek(self, key: K) -> V | None:
        """A value without waiting for I/O: a fresh one, or a slightly stale one while it is reloaded in
        the background; None when the caller must `get` it."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        age = self._clock() - entry[0]
        if age < self._ttl():
            return entry[1]
        if age < self._max_stale():
            self._reload_in_background(key)
            return entry[1]
        return None

    def get(self, key: K, *, fresh: bool = False) -> V:
        """The cached value if fresh (unless `fresh`), else a load; errors of `load` propagate."""
        if not fresh and (value := self._fresh(key)) is not None:
            return value
        with self._lock(key):
            if not fresh and (value := self._fresh(key)) is not None:
                return value
            try:
                value = self._load(key)
            except Exception:
                self._entries.pop(key, None)
                raise
            self.put(key, value)
            return value

    def put(self, key: K, value: V) -> None:
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[key] = (self._clock(), value)

    def drop(self, key: K) -> None:
        self._entries.pop(key, None)

    def _fresh(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is not None and self._clock() - entry[0] < self._ttl():
            return entry[1]
        return None

    def _lock(self, key: K) -> threading.Lock:
        with self._locks_guard:
            if len(self._locks) >= self._max_entries:
                self._locks = {k: lock for k, lock in self._locks.items() if lock.locked()}
            return self._locks.setdefault(key, threading.Lock())

    def _reload_in_background(self, key: K) -> None:
        lock = self._lock(key)
        if not lock.acquire(blocking=False):
            return  # a load of this key is already running

        def reload() -> None:
            try:
                self.put(key, self._load(key))
            except Exception as exc:  # the next reader loads it in its own thread and sees the error
                log.debug("background reload of %r failed: %s", key, exc)
                self._entries.pop(key, None)
            finally:
                lock.release()

        try:
            _BACKGROUND.submit(reload)
        except RuntimeError:  # interpreter shutting down
            lock.release()
