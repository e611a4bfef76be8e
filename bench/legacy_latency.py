"""Latency of the 000 polling endpoints under 50 concurrent clients (wrk, loopback only, bounded time).

/get_resu_process is what every legacy client hammers while it waits; /healthcheck.do is what load
balancers hit. Goal: p99 under 50 ms. Runs wrk for a fixed 15 s per endpoint, every client sending its
next request as soon as the last one is answered (saturation: the hardest reading of "50 concurrent
clients"), against a fresh embedded stack with one finished job; writes bench/results/legacy_latency.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
from benchstack import RESULTS, embedded_stack, machine, wrk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.traffic import traffic_csv

CONNECTIONS = 50
SECONDS = 15
BRIDGE_WORKERS = 2


def main() -> None:
    with embedded_stack(status_cache_seconds=0.5, bridge_workers=BRIDGE_WORKERS) as stack:
        base = stack.bridge_url
        upload = httpx.post(f"{base}/upload_file", files={"flow_file": ("f.csv", traffic_csv())}).json()
        work_id = httpx.post(f"{base}/get_flow", data={"work_id": upload["work_id"]}).json()["work_id"]
        while httpx.post(f"{base}/get_resu_process", data={"work_id": work_id}).json()["process"] != "100%":
            time.sleep(0.5)
        results = {
            "POST /get_resu_process": wrk(
                f"{base}/get_resu_process",
                connections=CONNECTIONS,
                seconds=SECONDS,
                method="POST",
                form=f"work_id={work_id}",
            ),
            "GET /healthcheck.do": wrk(f"{base}/healthcheck.do", connections=CONNECTIONS, seconds=SECONDS),
        }
    lines = [
        f"Machine: {machine()}; wrk -t2 -c{CONNECTIONS} -d{SECONDS}s; bridge with {BRIDGE_WORKERS} uvicorn "
        "workers.",
        "",
        "| endpoint | p50 | p99 | requests/s | non-2xx | p99 vs 50 ms goal |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r.p50_ms:.1f} ms | {r.p99_ms:.1f} ms | {r.rps:.0f} | {r.non_2xx} | "
            f"{r.p99_ms / 50:.2f}× |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "legacy_latency.md").write_text(text)


if __name__ == "__main__":
    main()
