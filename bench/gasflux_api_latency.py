"""Latency of GasFlux's GET /health and GET /task/{id} under 50 concurrent clients (wrk, loopback only).

The document's targets are /health < 100 ms and /task/{id} < 300 ms; the goal is ten times better at p99
(10 ms and 30 ms). Two load shapes are measured with wrk (a C load generator: a Python client on two
cores eats the server's CPU and measures itself), each for a fixed time:

- polling: every client sends a request, waits for the answer, then pauses `--think-ms` (default 100 ms,
  thirty times more often than the document's 3 s polling loop); this is the load the targets describe.
- saturation: no pause; with a fixed number of clients latency is then set by throughput (Little's law:
  latency ≈ clients / requests per second), so it shows the headroom rather than a client's wait.

Without --url an embedded stack (`make run`'s: Prefect on SQLite, runner, one bridge worker, SQLite
metadata) is started in a temporary folder; one GasFlux task is run to completion first so /task reads
a finished task with its result files. Prints a markdown table and writes
bench/results/gasflux_api_latency.md.

    .venv/bin/python bench/gasflux_api_latency.py [--url http://127.0.0.1:8000] [--clients 50]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.benchstack import WrkResult, machine, wrk  # noqa: E402

TARGETS_MS = {"/health": 100.0, "/task/{id}": 300.0}
GOAL_FACTOR = 10.0


@dataclass
class Result:
    endpoint: str
    shape: str
    load: WrkResult
    server_avg_ms: float
    server_max_ms: float


def measure(url: str, path: str, label: str, shape: str, clients: int, seconds: int, think_ms: int) -> Result:
    wrk(url + path, connections=clients, seconds=2, think_ms=think_ms)  # warm connections and caches
    httpx.post(f"{url}/stats/reset")
    load = wrk(url + path, connections=clients, seconds=seconds, think_ms=think_ms)
    server = httpx.get(f"{url}/stats").json()["data"]["performance"]  # handler time inside the bridge
    return Result(label, shape, load, server["avg_response_time_ms"], server["max_response_time_ms"])


def _start_stack(folder: Path):  # type: ignore[no-untyped-def]
    from flowbridge.settings import Settings
    from flowbridge.stack import EmbeddedStack, free_ports

    port, prefect_port = free_ports(2)
    settings = Settings(data_dir=folder / "data", port=port, prefect_port=prefect_port, runner_limit=2)
    stack = EmbeddedStack(settings, log_dir=folder / "logs")
    stack.start()
    return stack


def _completed_task(url: str, folder: Path) -> str:
    from tests.support.plume import PlumeFlight, simulate

    data = folder / "bench_flight.xlsx"
    simulate(PlumeFlight(seed=7)).frame.to_excel(data, index=False, engine="openpyxl")
    with httpx.Client(base_url=url, timeout=60) as http:
        job_id = http.post("/upload", files={"file": (data.name, data.read_bytes())}).json()["job_id"]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            status = http.get(f"/task/{job_id}").json()["status"]
            if status in {"completed", "failed"}:
                return job_id
            time.sleep(0.5)
    raise TimeoutError("the GasFlux task did not finish")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="an existing bridge (default: start an embedded stack)")
    parser.add_argument("--task-id", help="task to poll with --url (default: run one)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=15, help="per endpoint and load shape")
    parser.add_argument("--think-ms", type=int, default=100, help="pause between a client's requests")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="gasflux-bench-"))
    stack = None
    try:
        url = args.url
        if url is None:
            stack = _start_stack(folder)
            url = stack.bridge_url
        assert httpx.URL(url).host in {"127.0.0.1", "localhost", "::1"}, "loopback only"
        job_id = args.task_id or _completed_task(url, folder)
        results = [
            measure(url, path, label, shape, args.clients, args.seconds, think)
            for shape, think in (("polling", args.think_ms), ("saturation", 0))
            for label, path in (("/health", "/health"), ("/task/{id}", f"/task/{job_id}"))
        ]
        report = _report(results, args)
        print(report)
        out = ROOT / "bench" / "results" / "gasflux_api_latency.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report, encoding="utf-8")
    finally:
        if stack is not None:
            stack.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _report(results: list[Result], args: argparse.Namespace) -> str:
    lines = [
        "# GasFlux API latency (bench/gasflux_api_latency.py)",
        "",
        f"Machine: {machine()}; wrk and the bridge (1 uvicorn worker) on the same machine over loopback. "
        f"{args.clients} concurrent clients, {args.seconds} s per row; polling = {args.think_ms} ms pause "
        "between a client's requests. Load average when the run ended: "
        f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())} (1/5/15 min).",
        "",
        "| endpoint | load | requests | req/s | p50 ms | p90 ms | p99 ms | max ms | document target | "
        "target / p99 | goal 10x met | bridge handler avg / max ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        target = TARGETS_MS[r.endpoint]
        ratio = target / r.load.p99_ms if r.load.p99_ms > 0 else float("inf")
        lines.append(
            f"| {r.endpoint} | {r.shape} | {r.load.requests} | {r.load.rps:.0f} | {r.load.p50_ms:.2f} | "
            f"{r.load.p90_ms:.2f} | {r.load.p99_ms:.2f} | {r.load.max_ms:.2f} | < {target:.0f} ms | "
            f"{ratio:.1f}x | {'yes' if ratio >= GOAL_FACTOR else 'no'} | "
            f"{r.server_avg_ms:.2f} / {r.server_max_ms:.2f} |"
        )
    errors = sum(r.load.socket_errors for r in results)
    non_2xx = sum(r.load.non_2xx for r in results)
    lines += ["", f"Socket errors: {errors}; non-2xx answers (a degraded /health is 503): {non_2xx}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
