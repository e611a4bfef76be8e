"""Overhead of the offline platform's storage path (001 over S3) against the same job through the 000 API.

Both run traffic_forecast on the same small CSV on one fresh embedded stack. 000: upload_file + get_flow,
then poll get_resu_process to 100%. 001: the CSV already sits in the caller's bucket (an S3 server on
127.0.0.1, moto), submit, then poll task/get to FINISHED — which adds the output check, staging, the
subflow and copying the results back. Runs alternate so load drifts hit both; the median is compared.
Goal: 001 adds under 20 %. Writes bench/results/offline_overhead.md.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from benchstack import RESULTS, embedded_stack, machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.services import TestServices
from tests.support.traffic import traffic_csv

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
POLL = 0.2
TOKEN = "bench-token"
CSV = traffic_csv(days=28, freq="30min", sensors=2)
GOAL = 0.20


def run_seconds(api: str, legacy_id: str) -> float:
    """The flow run's own start→end, from Prefect (excludes queueing and the process start)."""
    from api_bridge.gateway import get_gateway

    gateway = get_gateway()
    job = gateway.find(api, legacy_id)
    assert job is not None, (api, legacy_id)
    return float(gateway.status(job.flow_run_id, fresh=True).duration_seconds or 0.0)


def run_000(base: str) -> tuple[float, float]:
    started = time.perf_counter()
    upload = httpx.post(f"{base}/upload_file", files={"flow_file": ("flow.csv", CSV)}, timeout=60).json()
    started_job = httpx.post(f"{base}/get_flow", data={"work_id": upload["work_id"]}, timeout=60).json()
    work_id = started_job["work_id"]
    while True:
        answer = httpx.post(f"{base}/get_resu_process", data={"work_id": work_id}, timeout=60).json()
        if answer["ret"] != "5000":
            raise RuntimeError(f"000 job failed: {answer}")
        if answer["process"] == "100%":
            return time.perf_counter() - started, run_seconds("000", work_id)
        time.sleep(POLL)


def run_001(base: str, ceph: dict[str, str], bucket: str) -> tuple[float, float]:
    headers = {"Authorization": TOKEN}
    body = {
        "algorithm": "traffic_forecast",
        "params": {},
        "email": "bench@example.com",
        "inputFileSystemInfo": {**ceph, "inputPath": f"{bucket}#in/flow.csv"},
        "outputFileSystemInfo": {**ceph, "outputPath": f"{bucket}#out"},
    }
    started = time.perf_counter()
    task_id = httpx.post(f"{base}/api/algorithm/task/submit", json=body, headers=headers, timeout=60).json()[
        "taskId"
    ]
    while True:
        answer = httpx.get(
            f"{base}/api/algorithm/task/get", params={"taskId": task_id}, headers=headers, timeout=60
        ).json()
        if answer["status"] == "FINISHED":
            return time.perf_counter() - started, run_seconds("001", str(task_id))
        if answer["status"] == "ERROR":
            raise RuntimeError(f"001 task failed: {answer}")
        time.sleep(POLL)


def main() -> None:
    services = TestServices(Path(tempfile.mkdtemp(prefix="flowbridge-bench-services-")))
    info = services.start()
    os.environ["FLOWBRIDGE_API_TOKENS"] = TOKEN  # the stack's processes read settings from the environment
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    s3 = info.s3_client()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="in/flow.csv", Body=CSV)
    ceph = {
        "fileSystemType": "CEPH",
        "host": info.s3_host,
        "port": str(info.s3_port),
        "userName": info.access_key,
        "password": info.secret_key,
    }
    times: dict[str, list[float]] = {"000": [], "001": []}
    runs: dict[str, list[float]] = {"000": [], "001": []}
    try:
        with embedded_stack(runner_limit=2) as stack:
            base = stack.bridge_url
            run_000(base), run_001(base, ceph, bucket)  # warm-up: first imports in the runner
            for _ in range(ROUNDS):
                for path in ("000", "001"):
                    wall, run = run_000(base) if path == "000" else run_001(base, ceph, bucket)
                    times[path].append(wall)
                    runs[path].append(run)
    finally:
        services.stop()
    m000, m001 = statistics.median(times["000"]), statistics.median(times["001"])
    r000, r001 = statistics.median(runs["000"]), statistics.median(runs["001"])
    overhead = m001 / m000 - 1
    best = min(times["001"]) / min(times["000"]) - 1
    verdict = "meets" if overhead < GOAL else "misses"
    lines = [
        "# Offline platform (001) storage-path overhead",
        "",
        f"Machine: {machine()}; load average {os.getloadavg()[0]:.1f} at the end. traffic_forecast on a"
        f" {len(CSV) // 1024} KiB CSV (28 days at 30 min, 2 series); {ROUNDS} alternating rounds after one"
        f" warm-up each; polling every {POLL} s.",
        f"Goal: 001 over S3 adds under {GOAL:.0%} to submit→done of the 000 API.",
        "",
        "| path | median (s) | min (s) | max (s) |",
        "|---|---:|---:|---:|",
        f"| 000: upload_file + get_flow → 100% | {m000:.2f} | {min(times['000']):.2f} | "
        f"{max(times['000']):.2f} |",
        f"| 001: submit (input on S3) → FINISHED, output on S3 | {m001:.2f} | {min(times['001']):.2f} | "
        f"{max(times['001']):.2f} |",
        f"| flow run start→end (Prefect), 000 job / 001 wrapper | {r000:.2f} / {r001:.2f} | "
        f"{min(runs['000']):.2f} / {min(runs['001']):.2f} | "
        f"{max(runs['000']):.2f} / {max(runs['001']):.2f} |",
        "",
        f"**001 / 000 = {m001 / m000:.2f}x ({overhead:+.1%}) by median, {best:+.1%} by best run, {verdict}"
        f" the {GOAL:.0%} goal.** On a loaded machine (see load average) queueing and process starts dominate"
        " both paths, so compare median and best run; the flow-run row is not like-for-like: the wrapper run"
        " includes importing the job's flow module, which a 000 run does before it starts."
        " The 001 path adds the output-writability check, staging the input from S3, the job as a subflow"
        " of the wrapper flow, copying the results back to S3, and the Secret-block lookups; the job runs"
        " in the same flow-run process (its imports overlap the S3 I/O), so no second process start.",
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "offline_overhead.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
