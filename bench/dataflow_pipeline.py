"""DataFlow pipeline overhead (issue 6): 1M-row CSV -> filter -> aggregate -> Parquet.

The same pandas code run bare is the baseline. flowbridge runs it as a dataflow on a throw-away embedded
stack (Prefect server, runner, bridge; SQLite metadata DB, embedded graph store) and is timed two ways:
the flow run's own duration (Prefect start to end time: tasks, claim, progress artifact, lineage write),
and end to end as a client sees it (execute-dataflow until get-dataflow-status says completed, which adds
queueing and the flow-run process start). Goal: flow-run time under 10% over bare.

Made fair (issue 6 review), each point measured, not assumed:
- The runner executes every flow run in a fresh process, its modules imported before the run goes
  RUNNING. The baseline is therefore the bare code in a fresh process too, timed after the same imports
  (pandas, pyarrow.parquet, arrow string support). The old baseline, the bare code repeated in this warm
  process, skips first-call costs no fresh process avoids (thread pools, allocator growth); it is shown
  apart.
- Bare and flow runs alternate while the stack is up, so both see the same idle stack and the same load
  from whatever else runs on the machine; medians of REPEATS pairs, with the load average.
- Fixed cost and scale, to say what the goal can mean: the same dataflow on a 10-row CSV (flowbridge's
  fixed cost per run), Prefect's own floor (a flow of five no-op tasks, run in a fresh process against
  the same server, Prefect's start to end time), and a 10M-row CSV, each with its bare baseline.
- The client polls status every 0.25 s (a real client's pace; the e2e tests poll every 0.4 s), not every
  0.05 s: each poll costs the Prefect server and bridge ~30 ms of CPU, and at 20 polls a second that load
  (30% of a core on a 2-core machine) slowed the very flow run being timed. End to end is therefore
  resolved to 0.25 s.
Prints a markdown table and writes bench/results/dataflow_pipeline.md.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.benchstack import RESULTS, embedded_stack, machine

ROWS = 1_000_000
REPEATS = 7
POLL_SECONDS = 0.25
BASE = "/api/data-flow"


SCALE_ROWS = (10, 10_000_000)
SCALE_REPEATS = 3


def make_csv(path: Path, rows: int = ROWS) -> None:
    rng = np.random.default_rng(42)
    frame = pd.DataFrame(
        {
            "id": np.arange(rows),
            "region": rng.choice([f"region_{i}" for i in range(50)], rows),
            "amount": rng.uniform(0, 100, rows).round(2),
            "qty": rng.integers(1, 20, rows),
        }
    )
    frame.to_csv(path, index=False)


def bare(source: Path, target: Path) -> float:
    """What a hand-written script does: the same reader, query, groupby and writer the steps use."""
    start = time.perf_counter()
    frame = pd.read_csv(source)
    frame = frame.query("amount > 10", engine="python")
    frame = frame.groupby(["region"], as_index=False, sort=True).agg(
        amount=("amount", "sum"), qty=("qty", "mean")
    )
    frame.to_parquet(target, index=False)
    return time.perf_counter() - start


def bare_fresh(source: Path, target: Path) -> float:
    """`bare` once in a new process, timed after its imports: what the runner's flow-run process gets."""
    out = subprocess.run(
        [sys.executable, __file__, "--bare", str(source), str(target)],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def prefect_floor(api_url: str) -> float:
    """Prefect start to end of a flow of five no-op tasks, run in a fresh process on the same server: the
    least any flow with one task per step costs, before flowbridge adds anything."""
    out = subprocess.run(
        [sys.executable, __file__, "--floor"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PREFECT_API_URL": api_url},
    )
    return float(out.stdout.strip().splitlines()[-1])


def run_floor_flow() -> float:
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.client.orchestration import get_client

    @task(cache_policy=NO_CACHE)
    def step(value: int) -> int:
        return value

    @flow(name="bench-prefect-floor")
    def five_steps() -> int:
        value = 0
        for index in range(5):
            value = step.with_options(name=f"step_{index}")(value)
        return value

    state = five_steps(return_state=True)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.start_time is not None and run.end_time is not None
    return (run.end_time - run.start_time).total_seconds()


def pipeline_config(source: Path, target: Path) -> dict[str, object]:
    return {
        "source": {"type": "csv", "path": str(source)},
        "transforms": [
            {"type": "filter", "expr": "amount > 10"},
            {"type": "aggregate", "by": ["region"], "aggs": {"amount": "sum", "qty": "mean"}},
        ],
        "target": {"type": "parquet", "path": str(target)},
    }


def scale_rows(client: httpx.Client, folder: Path) -> list[tuple[int, float, float]]:
    """(rows, flow run median, bare fresh median) for each of SCALE_ROWS, alternating as above."""
    out = []
    for rows in SCALE_ROWS:
        source = folder / f"scale_{rows}.csv"
        make_csv(source, rows)
        body = {
            "name": f"benchmark {rows} rows",
            "description": "bench",
            "config": pipeline_config(source, folder / f"scale_{rows}.parquet"),
        }
        created = client.post(f"{BASE}/add-dataflow", json=body).json()["data"]
        run_dataflow(client, created["id"])
        flows, bares = [], []
        for _ in range(SCALE_REPEATS):
            flows.append(run_dataflow(client, created["id"])["flow"])
            bares.append(bare_fresh(source, folder / f"scale_{rows}_bare.parquet"))
        out.append((rows, statistics.median(flows), statistics.median(bares)))
        source.unlink()
    return out


def run_dataflow(client: httpx.Client, dataflow_id: int) -> dict[str, float]:
    """Seconds of one run: the flow run by Prefect's clock (split into before its first task run, inside
    task runs, between them, after the last) and end to end as the client saw it."""
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId

    from api_bridge.gateway import get_gateway

    start = time.perf_counter()
    answer = client.post(f"{BASE}/execute-dataflow/{dataflow_id}", json={}).json()
    assert answer["code"] == 200, answer
    while True:
        status = client.get(f"{BASE}/get-dataflow-status/{dataflow_id}").json()["data"]
        if status["status"] in {"completed", "failed"}:
            break
        time.sleep(POLL_SECONDS)
    end_to_end = time.perf_counter() - start
    assert status["status"] == "completed", status
    gateway = get_gateway()
    latest = gateway.latest_run("dataflow_run", f"dataflow:{dataflow_id}")
    assert latest is not None and latest.duration_seconds is not None
    assert latest.started is not None and latest.ended is not None
    tasks = sorted(
        (t.start_time, t.end_time)
        for t in gateway.client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[latest.run_id]))
        )
        if t.start_time and t.end_time
    )
    inside = sum((end - begin).total_seconds() for begin, end in tasks)
    before = (tasks[0][0] - latest.started).total_seconds()
    after = (latest.ended - tasks[-1][1]).total_seconds()
    return {
        "flow": latest.duration_seconds,
        "before": before,
        "tasks": inside,
        "between": latest.duration_seconds - before - inside - after,
        "after": after,
        "e2e": end_to_end,
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = folder / "sales.csv"
        make_csv(source)
        size_mb = source.stat().st_size / 2**20
        bare_times: list[float] = []
        warm_times: list[float] = []
        runs: list[dict[str, float]] = []
        with embedded_stack() as stack, httpx.Client(base_url=stack.bridge_url, timeout=120) as client:
            config = pipeline_config(source, folder / "flow.parquet")
            body = {"name": "benchmark 1M rows", "description": "bench", "config": config}
            created = client.post(f"{BASE}/add-dataflow", json=body).json()["data"]
            run_dataflow(client, created["id"])  # warm-up: the runner's and server's first run
            bare_fresh(source, folder / "bare.parquet")  # warm-up: page cache, interpreter files
            load_before = os.getloadavg()
            for repeat in range(REPEATS):
                flow_first = repeat % 2 == 1  # alternate the order: neither side always runs first
                if flow_first:
                    runs.append(run_dataflow(client, created["id"]))
                bare_times.append(bare_fresh(source, folder / "bare.parquet"))
                if not flow_first:
                    runs.append(run_dataflow(client, created["id"]))
                warm_times.append(bare(source, folder / "warm.parquet"))
            load_after = os.getloadavg()
            floors = [prefect_floor(stack.prefect_api_url) for _ in range(6)][1:]  # first: warm-up
            scale = scale_rows(client, folder)
        same = pd.read_parquet(folder / "bare.parquet").equals(pd.read_parquet(folder / "flow.parquet"))
    base = statistics.median(bare_times)
    flow_times = [r["flow"] for r in runs]
    flow = statistics.median(flow_times)
    paired = statistics.median(f / b for f, b in zip(flow_times, bare_times, strict=True))

    def row(label: str, seconds: float, goal: str = "-") -> str:
        return f"| {label} | {seconds:.2f} | {seconds / base:.2f} | {goal} |"

    def part(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    rows = [
        row("bare pandas, fresh process (baseline)", base),
        row("bare pandas, warm in-process repeat (old baseline)", statistics.median(warm_times)),
        row("flowbridge flow run (Prefect start->end)", flow, "yes" if flow / base < 1.10 else "no"),
        row("- before its first task run (engine setup, params, claim/graph started)", part("before")),
        row("- inside its 5 task runs (load, source, filter, aggregate, target)", part("tasks")),
        row("- between task runs", part("between")),
        row("- after its last task run (progress flush, lineage, Completed)", part("after")),
        row("flowbridge end to end (execute -> status completed)", part("e2e")),
    ]
    scale_table = [
        "| rows | flow run (s) | bare, fresh process (s) | ratio |",
        "|---:|---:|---:|---:|",
        *(
            f"| {rows:,} | {flow_s:.3f} | {bare_s:.3f} | {flow_s / bare_s:.2f} |"
            for rows, flow_s, bare_s in scale
        ),
        f"| Prefect floor: five no-op tasks | {statistics.median(floors):.3f} | - | - |",
    ]
    table = "\n".join(
        [
            f"1,000,000-row CSV ({size_mb:.0f} MB) -> filter `amount > 10` -> group by region "
            f"(sum, mean) -> Parquet; medians of {REPEATS} alternating bare/flow pairs after one warm-up "
            f"each; outputs identical: {same}.",
            "",
            f"Machine: {machine()}; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
            "(other jobs share the machine).",
            "",
            "| variant (parts: medians of each part) | seconds | ratio to bare | under 1.10 goal |",
            "|---|---|---|---|",
            *rows,
            "",
            f"Median of the per-pair ratios flow/bare: {paired:.2f}. "
            f"Flow runs: {', '.join(f'{t:.2f}' for t in flow_times)}; "
            f"bare: {', '.join(f'{t:.2f}' for t in bare_times)}.",
            "",
            f"Fixed cost and scale (medians of {SCALE_REPEATS} alternating pairs; the floor: median of 5 "
            "runs after a warm-up). The 10-row run is flowbridge's cost per run with almost no data; the "
            "floor is what Prefect alone costs for a flow of five task runs, more than the 10 % budget "
            "(14 ms) of the 1M-row run by itself.",
            "",
            *scale_table,
        ]
    )
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dataflow_pipeline.md").write_text(
        f"# DataFlow pipeline benchmark\n\n{table}\n", encoding="utf-8"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--floor"]:
        print(run_floor_flow())
    elif sys.argv[1:2] == ["--bare"]:
        # imported before the clock, as tasks/dataflow/steps.py imports them before the flow run starts
        import pandas.core.arrays.arrow.extension_types
        import pyarrow.pandas_compat
        import pyarrow.parquet  # noqa: F401

        print(bare(Path(sys.argv[2]), Path(sys.argv[3])))
    else:
        main()
