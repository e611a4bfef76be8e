"""Orchestration cost on this machine: what Prefect adds around a job, against calling the flow in-process.

Measures, on a fresh embedded stack (Prefect server on SQLite, one runner, the bridge):
- submit → RUNNING and submit → COMPLETED latency of a no-op job (diagnostics probe), median and p95;
- the same for a traffic forecast (21 days hourly, 2 roads), against its flow function called in-process;
- sustained throughput: a burst of no-op and of traffic jobs, jobs per minute until all are done.
Writes bench/results/orchestration.md.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from benchstack import RESULTS, embedded_stack, machine, percentile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.traffic import traffic_csv

PROBES = 15
FORECASTS = 5
BURST_PROBES = 30
BURST_FORECASTS = 8


def _wait(gateway, run_id, state_name: str, timeout: float = 600) -> float:  # type: ignore[no-untyped-def]
    from api_bridge.jobs import JobState

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = gateway.status(run_id, fresh=True)
        if status.state is JobState(state_name) or (state_name == "RUNNING" and status.state.is_final):
            return time.perf_counter()
        if status.state.is_final and status.state is not JobState(state_name):
            raise RuntimeError(f"{run_id} ended {status.state}: {status.message}")
        time.sleep(0.05)
    raise TimeoutError(run_id)


def _latencies(gateway, job_type: str, params: dict, count: int) -> tuple[list[float], list[float]]:  # type: ignore[no-untyped-def]
    to_running, to_done = [], []
    for i in range(count):
        t0 = time.perf_counter()
        run_id = gateway.submit(job_type, params, api="bench", legacy_id=f"{job_type}-{time.time_ns()}-{i}")
        to_running.append(_wait(gateway, run_id, "RUNNING") - t0)
        to_done.append(_wait(gateway, run_id, "COMPLETED") - t0)
    return to_running, to_done


def _burst(gateway, job_type: str, params_for, count: int) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    runs = [
        gateway.submit(job_type, params_for(i), api="bench", legacy_id=f"burst-{time.time_ns()}-{i}")
        for i in range(count)
    ]
    for run_id in runs:
        _wait(gateway, run_id, "COMPLETED")
    return count / ((time.perf_counter() - t0) / 60)


def _stage_upload(storage, i: int) -> str:  # type: ignore[no-untyped-def]
    path = f"uploads/bench/u{i}/flow.csv"
    storage.write_bytes(storage.path(path), traffic_csv(days=21, sensors=2, seed=i))
    return path


def main() -> None:
    with embedded_stack() as stack:
        from api_bridge.jobs import JobGateway
        from flows.traffic_forecast import traffic_forecast
        from storage.filesystems import get_storage

        gateway = JobGateway()
        storage = get_storage()
        inputs = [_stage_upload(storage, i) for i in range(max(FORECASTS, BURST_FORECASTS))]

        probe_run, probe_done = _latencies(gateway, "diagnostics_probe", {"seconds": 0}, PROBES)
        fc_run, fc_done = [], []
        for i in range(FORECASTS):
            r, d = _latencies(gateway, "traffic_forecast", {"input_path": inputs[i]}, 1)
            fc_run += r
            fc_done += d

        # the same flow function, called in this process (Prefect records it, no runner, no subprocess)
        in_process = []
        for i in range(FORECASTS):
            t0 = time.perf_counter()
            traffic_forecast(input_path=inputs[i])
            in_process.append(time.perf_counter() - t0)
        # and the bare function, with no Prefect at all
        bare = []
        for i in range(FORECASTS):
            t0 = time.perf_counter()
            traffic_forecast.fn(input_path=inputs[i])
            bare.append(time.perf_counter() - t0)

        probe_rate = _burst(gateway, "diagnostics_probe", lambda i: {"seconds": 0}, BURST_PROBES)
        fc_rate = _burst(
            gateway, "traffic_forecast", lambda i: {"input_path": inputs[i % len(inputs)]}, BURST_FORECASTS
        )
        limit = stack.settings.runner_limit
        gateway.close()

    med = statistics.median
    direct_rate = 60 / med(in_process)
    rows = [
        "| measure | median | p95 |",
        "|---|---|---|",
        f"| no-op job: submit → RUNNING | {med(probe_run):.2f} s | {percentile(probe_run, 95):.2f} s |",
        f"| no-op job: submit → COMPLETED | {med(probe_done):.2f} s | {percentile(probe_done, 95):.2f} s |",
        f"| traffic forecast: submit → RUNNING | {med(fc_run):.2f} s | {percentile(fc_run, 95):.2f} s |",
        f"| traffic forecast: submit → result | {med(fc_done):.2f} s | {percentile(fc_done, 95):.2f} s |",
        f"| traffic forecast: flow called in-process | {med(in_process):.2f} s "
        f"| {percentile(in_process, 95):.2f} s |",
        f"| traffic forecast: bare function, no Prefect | {med(bare):.2f} s | {percentile(bare, 95):.2f} s |",
        "",
        "| throughput | jobs/min |",
        "|---|---|",
        f"| burst of {BURST_PROBES} no-op jobs (runner limit {limit}) | {probe_rate:.1f} |",
        f"| burst of {BURST_FORECASTS} traffic forecasts (runner limit {limit}) | {fc_rate:.1f} |",
        f"| traffic forecasts one after another, in-process | {direct_rate:.1f} |",
        "",
        f"Ratio submit→result / in-process call: **{med(fc_done) / med(in_process):.2f}×**; "
        f"sustained throughput / in-process sequential: **{fc_rate / direct_rate:.2f}×**.",
    ]
    text = "\n".join([f"Machine: {machine()}", "", *rows, ""])
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "orchestration.md").write_text(text)


if __name__ == "__main__":
    main()
