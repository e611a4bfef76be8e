"""The one polling helper of the e2e tests: ask until an answer is final, or fail saying what was seen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(
    read: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.5,
    seen: list[T] | None = None,
) -> T:
    """Call `read` every `interval` s until `done(answer)`; returns that answer. Every answer is appended
    to `seen` when given (tests assert on the sequence, e.g. that progress never goes backwards). On
    timeout the assertion names `what` and the last answer, so a stuck job says where it stuck."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = read()
        if seen is not None:
            seen.append(last)
        if done(last):
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not done after {timeout} s; last answer {last!r}")
        time.sleep(interval)
