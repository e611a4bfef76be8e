"""The DataFlow run's bookkeeping off the critical path (issue 6): the claim and other background calls
(background progress is tasks/progress.py's, tested in test_progress.py)."""

from __future__ import annotations

import threading

import flows.dataflow.run as dataflow_run


def test_background_calls_keep_the_context_and_hand_back_result_or_error() -> None:
    names: list[str] = []

    def work(value: int) -> int:
        names.append(threading.current_thread().name)
        return value * 2

    assert dataflow_run._in_background(work, 21).result(timeout=5) == 42
    assert names == ["dataflow-work"]

    def refuse() -> None:
        raise dataflow_run.DataflowError("dataflow 7 is already running")

    claim = dataflow_run._in_background(refuse)
    error = dataflow_run._claim_error(claim)
    assert isinstance(error, dataflow_run.DataflowError) and "already running" in str(error)
    assert dataflow_run._claim_error(None) is None
    assert dataflow_run._claim_error(dataflow_run._in_background(lambda: None)) is None
