"""When a Prefect task is worth another try: one predicate factory for every `retry_condition_fn`.

A task retries what may pass next time (storage, network, memory pressure) and never what will fail the
same way again (a bad upload, a wrong config, a remote error marked permanent).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

RetryCondition = Callable[[Any, Any, Any], bool]


def _raised(state: Any) -> BaseException | None:
    try:
        state.result()
    except Exception as exc:
        return exc
    return None


def retry_unless(*permanent: type[BaseException]) -> RetryCondition:
    """Retry any failure except one of the `permanent` exception types."""

    def condition(_task: Any, _run: Any, state: Any) -> bool:
        return not isinstance(_raised(state), permanent)

    return condition


def retry_if_transient(_task: Any, _run: Any, state: Any) -> bool:
    """Retry only errors that say they are worth another try (`exc.transient`, set by the remote file
    systems)."""
    return bool(getattr(_raised(state), "transient", False))
