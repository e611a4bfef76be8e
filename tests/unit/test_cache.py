"""The polling cache: fresh reuse, stale-while-reloading, single flight, errors surfacing to a reader."""

from __future__ import annotations

import threading
import time

import pytest

from api_bridge.cache import RefreshingCache


class Source:
    """A value source that counts its loads and can be made slow or failing."""

    def __init__(self) -> None:
        self.value = 1
        self.loads = 0
        self.delay = 0.0
        self.fail = False

    def __call__(self, key: str) -> int:
        self.loads += 1
        time.sleep(self.delay)
        if self.fail:
            raise LookupError(key)
        return self.value


class Clock:
    """A clock the test moves by hand, so ages are exact and no test sleeps to make a value stale."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _cache(
    source: Source, clock: Clock | None = None, ttl: float = 0.2, max_stale: float = 0.6
) -> RefreshingCache[str, int]:
    return RefreshingCache(source, ttl=lambda: ttl, max_stale=lambda: max_stale, clock=clock or Clock())


def _wait_for(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


def test_unknown_keys_are_not_peeked_and_fresh_values_are_reused() -> None:
    source = Source()
    cache = _cache(source)
    assert cache.peek("a") is None
    assert cache.get("a") == 1
    source.value = 2
    assert cache.get("a") == 1 and cache.peek("a") == 1
    assert source.loads == 1
    assert cache.get("a", fresh=True) == 2
    assert source.loads == 2


def test_a_stale_value_is_served_while_one_background_reload_runs() -> None:
    source, clock = Source(), Clock()
    cache = _cache(source, clock)
    cache.get("a")
    source.value, source.delay = 2, 0.2
    clock.advance(0.25)  # past ttl, before max_stale
    answers = [cache.peek("a") for _ in range(20)]
    assert answers == [1] * 20  # nobody waited for the slow load
    _wait_for(lambda: cache.peek("a") == 2)
    assert source.loads == 2  # twenty stale reads, one reload


def test_too_old_values_are_not_served() -> None:
    source, clock = Source(), Clock()
    cache = _cache(source, clock, ttl=0.05, max_stale=0.1)
    cache.get("a")
    # the stale peek below starts a background reload; slow, so it cannot land (and make the value fresh
    # again) before the second peek: without the delay this test raced the reload thread
    source.delay = 0.5
    clock.advance(0.099)
    assert cache.peek("a") == 1  # stale but still servable
    clock.advance(0.002)
    assert cache.peek("a") is None


def test_concurrent_misses_share_one_load() -> None:
    source = Source()
    source.delay = 0.2
    cache = _cache(source)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("a"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [1] * 8
    assert source.loads == 1


def test_a_failing_reload_drops_the_entry_so_the_next_reader_sees_the_error() -> None:
    source, clock = Source(), Clock()
    cache = _cache(source, clock)
    cache.get("a")
    source.fail = True
    clock.advance(0.25)
    assert cache.peek("a") == 1  # starts the reload, which fails
    _wait_for(lambda: cache.peek("a") is None)
    with pytest.raises(LookupError):
        cache.get("a")


def test_drop_forgets_a_value() -> None:
    source = Source()
    cache = _cache(source)
    cache.get("a")
    cache.drop("a")
    assert cache.peek("a") is None
