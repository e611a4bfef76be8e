"""Orchestration cost on this machine: job start with warm start on and off, side by side in one run.

For each of the two runner modes (FLOWBRIDGE_WARM_START=true: runs fork from the preloaded template;
false: Prefect's `python -m prefect.engine` per run, the cold start of issue 11's baseline), on a fresh
embedded stack (Prefect server on SQLite, one runner with the default limit, the bridge):
- submit → RUNNING and submit → COMPLETED of a no-op job (diagnostics probe), median and p95;
- a traffic forecast (21 days hourly, 2 roads): submit → result, against its flow called in-process and
  the bare function (no Prefect), measured in the same run;
- sustained no-op throughput: a burst of jobs, jobs per minute until the last one completes.
Warm mode only: the template's RSS, one running job's private memory (copy-on-write), and the runner's RSS
before and after `--memory-jobs` no-op jobs in a row.
Writes bench/results/orchestration.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from benchstack import RESULTS, embedded_stack, machine, percentile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.traffic import traffic_csv


def _wait(gateway, run_id, state_name: str, timeout: float = 600) -> float:  # type: ignore[no-untyped-def]
    from api_bridge.gateway import JobState

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = gateway.status(run_id, fresh=True)
        if status.state is JobState(state_name) or (state_name == "RUNNING" and status.state.is_final):
            return time.perf_counter()
        if status.state.is_final and status.state is not JobState(state_name):
            raise RuntimeError(f"{run_id} ended {status.state}: {status.message}")
        time.sleep(0.02)
    raise TimeoutError(run_id)


def _latencies(gateway, job_type: str, params: dict, count: int) -> tuple[list[float], list[float]]:  # type: ignore[no-untyped-def]
    to_running, to_done = [], []
    for i in range(count):
        t0 = time.perf_counter()
        run_id = gateway.submit(job_type, params, api="bench", legacy_id=f"{job_type}-{time.time_ns()}-{i}")
        to_running.append(_wait(gateway, run_id, "RUNNING") - t0)
        to_done.append(_wait(gateway, run_id, "COMPLETED") - t0)
        time.sleep(0.3)  # let the previous run's process exit: latency, not queueing
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


def _template(runner: psutil.Process) -> psutil.Process | None:
    for child in runner.children():
        if "forkserver" in " ".join(child.cmdline()):
            return child
    return None


def _private_mib(process: psutil.Process) -> float:
    info = process.memory_full_info()
    return (info.uss) / 2**20


def _memory(stack, gateway, jobs: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from deployments.warm_start import run_process_ids

    runner = psutil.Process(stack.processes["runner"].pid)
    template = _template(runner)
    assert template is not None, "no warm template under the runner"
    # one job that stays alive long enough to be measured
    run_id = gateway.submit(
        "diagnostics_probe", {"seconds": 4, "steps": 4}, api="bench", legacy_id=f"m-{time.time_ns()}"
    )
    _wait(gateway, run_id, "RUNNING")
    time.sleep(1.0)
    job = psutil.Process(run_process_ids(str(run_id))[0])
    job_private = _private_mib(job)
    _wait(gateway, run_id, "COMPLETED")
    before = runner.memory_info().rss / 2**20
    template_before = template.memory_info().rss / 2**20
    t0 = time.perf_counter()
    batch = 50
    for start in range(0, jobs, batch):
        runs = [
            gateway.submit(
                "diagnostics_probe", {"seconds": 0}, api="bench", legacy_id=f"mem-{time.time_ns()}-{i}"
            )
            for i in range(start, min(jobs, start + batch))
        ]
        for rid in runs:
            _wait(gateway, rid, "COMPLETED")
    rate = jobs / ((time.perf_counter() - t0) / 60)
    after = runner.memory_info().rss / 2**20
    return {
        "template_rss": template_before,
        "template_rss_after": template.memory_info().rss / 2**20,
        "job_private": job_private,
        "job_rss": job.memory_info().rss / 2**20 if job.is_running() else float("nan"),
        "runner_before": before,
        "runner_after": after,
        "jobs": jobs,
        "rate": rate,
    }


@dataclass
class Mode:
    """One runner mode's numbers."""

    limit: int = 0
    probe_run: list[float] = field(default_factory=list)
    probe_done: list[float] = field(default_factory=list)
    fc_done: list[float] = field(default_factory=list)
    burst: float = 0.0
    in_process: list[float] = field(default_factory=list)
    bare: list[float] = field(default_factory=list)
    memory: dict[str, float] = field(default_factory=dict)


def measure(
    warm: bool, probes: int, forecasts: int, burst: int, memory_jobs: int, **stack_settings: object
) -> Mode:
    with embedded_stack(warm_start=warm, **stack_settings) as stack:
        from api_bridge.gateway import JobGateway
        from flows.traffic.forecast import traffic_forecast
        from storage.filesystems import get_storage

        gateway = JobGateway()
        storage = get_storage()
        inputs = [_stage_upload(storage, i) for i in range(forecasts)]
        gateway.submit("diagnostics_probe", {"seconds": 0}, api="bench", legacy_id=f"warmup-{time.time_ns()}")
        time.sleep(3)
        out = Mode(limit=stack.settings.runner_limit)
        if probes:
            out.probe_run, out.probe_done = _latencies(gateway, "diagnostics_probe", {"seconds": 0}, probes)
        for i in range(forecasts):
            out.fc_done += _latencies(gateway, "traffic_forecast", {"input_path": inputs[i]}, 1)[1]
        out.burst = _burst(gateway, "diagnostics_probe", lambda i: {"seconds": 0}, burst)
        if warm and forecasts:
            from prefect.settings import PREFECT_API_URL, temporary_settings

            # the stack's server, not an ephemeral one Prefect would start for this process
            with temporary_settings({PREFECT_API_URL: stack.prefect_api_url}):
                traffic_forecast(input_path=inputs[0])  # this process's first call: imports, clients
                for i in range(forecasts):
                    t0 = time.perf_counter()
                    traffic_forecast(input_path=inputs[i])
                    out.in_process.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    traffic_forecast.fn(input_path=inputs[i])
                    out.bare.append(time.perf_counter() - t0)
        if warm and memory_jobs:
            out.memory = _memory(stack, gateway, memory_jobs)
        gateway.close()
    return out


def _postgres_database() -> str:
    """A fresh PostgreSQL database for the Prefect server (127.0.0.1:5432, trust auth, as on this machine)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.stack import create_database

    return create_database("flowbridge_bench_prefect")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--forecasts", type=int, default=5)
    parser.add_argument("--burst", type=int, default=60)
    parser.add_argument("--memory-jobs", type=int, default=1000)
    args = parser.parse_args()
    load_before = os.getloadavg()
    cold = measure(False, args.probes, args.forecasts, min(args.burst, 30), 0)
    warm = measure(True, args.probes, args.forecasts, args.burst, 0)
    # the same warm runner with Prefect's own database on PostgreSQL: the burst and the 1,000-job memory
    # run, which on SQLite queue behind the server's single writer (see the note under the table)
    database = _postgres_database()
    try:
        postgres = measure(True, 0, 0, args.burst, args.memory_jobs, prefect_database_url=database)
    finally:
        from tests.support.stack import drop_database

        drop_database(database)
    med = statistics.median

    def row(label: str, key: str, fn=med) -> str:  # type: ignore[no-untyped-def]
        c, w = fn(getattr(cold, key)), fn(getattr(warm, key))
        return f"| {label} | {c:.2f} s | {w:.2f} s | {w / c:.2f}× |"

    def p95(values: list[float]) -> float:
        return percentile(values, 95)

    in_process = med(warm.in_process)
    rows = [
        f"Machine: {machine()}; load average before the run {load_before[0]:.1f}; runner limit "
        f"{warm.limit} (the default: cores, at least 2).",
        "",
        "| measure | cold start (Prefect's engine command per run) | warm start | warm / cold |",
        "|---|---|---|---|",
        row("no-op job: submit → RUNNING, median", "probe_run"),
        row("no-op job: submit → RUNNING, p95", "probe_run", p95),
        row("no-op job: submit → COMPLETED, median", "probe_done"),
        row("no-op job: submit → COMPLETED, p95", "probe_done", p95),
        row("traffic forecast: submit → result, median", "fc_done"),
        f"| no-op burst throughput (jobs/min) | {cold.burst:.1f} | {warm.burst:.1f} "
        f"| {warm.burst / cold.burst:.2f}× |",
        f"| same, Prefect's database on PostgreSQL (jobs/min) | – | {postgres.burst:.1f} "
        f"| {postgres.burst / cold.burst:.2f}× |",
        "",
        f"Traffic forecast, same inputs: flow called in-process {in_process:.2f} s (median), bare "
        f"function {med(warm.bare):.2f} s; submit → result / in-process: cold "
        f"**{med(cold.fc_done) / in_process:.2f}×**, warm **{med(warm.fc_done) / in_process:.2f}×**.",
    ]
    if postgres.memory:
        m = postgres.memory
        growth = (m["runner_after"] - m["runner_before"]) / m["runner_before"]
        rows += [
            "",
            f"Memory (warm, Prefect on PostgreSQL): template RSS {m['template_rss']:.0f} MiB "
            f"({m['template_rss_after']:.0f} MiB after the run); one running no-op job "
            f"{m['job_private']:.0f} MiB private (copy-on-write: the rest of its RSS is shared with the "
            f"template); runner RSS {m['runner_before']:.0f} → {m['runner_after']:.0f} MiB over "
            f"{m['jobs']:.0f} no-op jobs in a row ({growth:+.1%}), at {m['rate']:.0f} jobs/min.",
        ]
    text = "\n".join([*rows, ""])
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "orchestration.md").write_text(text)


if __name__ == "__main__":
    main()
