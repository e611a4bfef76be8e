"""The one retry predicate (tasks/retries.py) every retried Prefect task uses."""

from __future__ import annotations

from typing import Any

from tasks.retries import retry_if_transient, retry_unless


class _State:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return 1


class _InputError(ValueError):
    pass


class _Remote(OSError):
    def __init__(self, transient: bool) -> None:
        super().__init__("remote")
        self.transient = transient


def test_retry_unless_skips_only_the_permanent_types() -> None:
    condition = retry_unless(_InputError, KeyError)
    assert condition(None, None, _State(OSError("disk"))) is True
    assert condition(None, None, _State(_InputError("bad upload"))) is False
    assert condition(None, None, _State(KeyError("x"))) is False
    assert condition(None, None, _State(None)) is True  # as Prefect's own default


def test_retry_if_transient_asks_the_error() -> None:
    assert retry_if_transient(None, None, _State(_Remote(transient=True))) is True
    assert retry_if_transient(None, None, _State(_Remote(transient=False))) is False
    assert retry_if_transient(None, None, _State(ValueError("plain"))) is False
    assert retry_if_transient(None, None, _State(None)) is False
