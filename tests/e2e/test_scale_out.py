"""docker-compose.yml's scale-out topology, proven with processes instead of containers.

Prefect server on PostgreSQL, `prefect deploy --all` from prefect.yaml, two warm workers (`flowbridge worker`)
each from its own copy of the code with no folder in common (job files on the S3 server), and a bridge
(tests/support/scale_out.py). Twenty jobs of four types go through the legacy APIs and complete, spread
over both workers; then the process group of the worker running a training is killed (a machine lost):
the other worker keeps taking jobs, and the zombie automation gets the lost job reported failed by every
003 call that shows a training's state.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from tests.e2e.dataflow.test_dataflow_api import add, execute, wait_final
from tests.e2e.gasflux.test_gasflux_api import CONFIG_YAML, STEM, _poll
from tests.e2e.mrms.test_mrms_api import cancer_frame, create_project, insert_hist, upload_dataset, wait_learn
from tests.e2e.traffic.test_traffic_api import start, upload, wait_done
from tests.support.plume import PlumeFlight, simulate
from tests.support.polling import poll
from tests.support.scale_out import ZOMBIE_AFTER_SECONDS, ScaleOutTopology, Worker
from tests.support.services import session_services
from tests.support.traffic import traffic_csv

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.xdist_group("scale_out"),
    pytest.mark.timeout(900),
]
JOB_FLOWS = ["traffic-forecast", "gasflux", "mrms-training", "dataflow-run"]
SALES = pd.DataFrame({"id": range(1, 7), "amount": [5, 12, 30, 8, 25, 14]})


# --- one job of each type, start to finish, through its legacy API ------------------------------------
def traffic_job(url: str, seed: int) -> str:
    with httpx.Client(base_url=url, timeout=180) as client:
        uploaded = upload(client, traffic_csv(days=15, sensors=1, seed=seed))
        assert start(client, uploaded["work_id"])["ret"] == "4000"
        answer, _ = wait_done(client, uploaded["work_id"], timeout=300)
        assert answer["process"] == "100%", answer
        forecast = client.post("/get_download_resu", data={"work_id": uploaded["work_id"]})
        assert len(pd.read_csv(io.BytesIO(forecast.content))) == 24
    return f"000:{uploaded['work_id']}"


def gasflux_job(url: str, data: Path) -> str:
    with httpx.Client(base_url=url, timeout=180) as client:
        files = {"file": (data.name, data.read_bytes()), "config": ("config.yaml", CONFIG_YAML.encode())}
        job_id = client.post("/upload", files=files).json()["job_id"]
        final, _ = _poll(client, job_id, timeout=300)
        assert final["status"] == "completed", final
        [report, *_] = [r for r in final["results"] if r["type"] == "report"]
        downloaded = client.get(report["download_url"])  # written by a worker, read by the bridge, via S3
        assert downloaded.status_code == 200 and b"<html" in downloaded.content.lower()
    return f"002:{job_id}"


def training_job(url: str, dataset_id: str) -> str:
    with httpx.Client(base_url=url, timeout=180) as client:
        project_id = create_project(client, dataset_id)
        hist_no = insert_hist(client, project_id, "sgd_classifier", json.dumps({"steps": 5}))
        assert wait_learn(client, hist_no, timeout=300) == "6"
        assert client.get("/mrms/model_download", params={"learn_hist_no": hist_no}).status_code == 200
    return f"003:{hist_no}"


def dataflow_job(url: str, topology: ScaleOutTopology, name: str) -> str:
    """Source and target are storage paths: both sit in the bucket, not on any worker's disk."""
    config = {
        "source": {"type": "csv", "path": "inputs/sales.csv"},
        "transforms": [{"type": "filter", "expr": "amount > 10"}],
        "target": {"type": "csv", "path": f"outputs/{name}.csv"},
    }
    with httpx.Client(base_url=url, timeout=180) as client:
        flow = add(client, config=config)
        assert execute(client, flow["id"])["code"] == 200
        assert wait_final(client, flow["id"], timeout=300)["status"] == "completed"
    written = topology.services.s3_client().get_object(Bucket=topology.bucket, Key=f"outputs/{name}.csv")
    assert pd.read_csv(written["Body"])["id"].tolist() == [2, 3, 5, 6]
    return f"004:{flow['id']}"


def run_all(jobs: list[Callable[[], str]]) -> list[str]:
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        return [future.result() for future in [pool.submit(job) for job in jobs]]


# --- what Prefect and the workers say ----------------------------------------------------------------
def flow_runs(api: str, **flow_run_filter: Any) -> list[dict[str, Any]]:
    """Top-level flow runs of the four job types' flows, filtered further by `flow_run_filter`."""
    body = {"flow_runs": {"parent_task_run_id": {"is_null_": True}, **flow_run_filter}, "limit": 200}
    body["flows"] = {"name": {"any_": JOB_FLOWS}}
    answer = httpx.post(f"{api}/flow_runs/filter", json=body, timeout=30)
    answer.raise_for_status()
    return answer.json()


def executed_by(api: str) -> dict[str, set[str]]:
    """Flow runs each worker executed to the end, from its `prefect.worker.executed-flow-run` events
    (logs would not do: both workers log "submitting" for a run they race for; one of them gets it)."""
    ran: dict[str, set[str]] = {}
    body = {"filter": {"event": {"name": ["prefect.worker.executed-flow-run"]}}, "limit": 50}
    page = httpx.post(f"{api}/events/filter", json=body, timeout=30).json()
    while True:
        for event in page["events"]:
            runs = ran.setdefault(event["resource"]["prefect.resource.name"], set())
            for related in event["related"]:
                if related["prefect.resource.role"] == "flow-run":
                    runs.add(related["prefect.resource.id"].removeprefix("prefect.flow-run."))
        if not page.get("next_page"):
            return ran
        page = httpx.get(page["next_page"], timeout=30).json()


def shares_of(api: str, ids: set[str], timeout: float = 30) -> dict[str, int]:
    """How many of `ids` each worker ran, once every one of them is accounted for (events arrive late)."""
    deadline = time.monotonic() + timeout
    while True:
        ran = executed_by(api)
        shares = {worker: len(runs & ids) for worker, runs in ran.items()}
        if sum(shares.values()) >= len(ids) or time.monotonic() > deadline:
            return shares
        time.sleep(1)


def worker_of(topology: ScaleOutTopology, run: dict[str, Any]) -> Worker:
    """The worker whose process group holds the run's process (each worker leads its own group)."""
    pgid = os.getpgid(int(run["infrastructure_pid"]))
    [worker] = [w for w in topology.workers.values() if w.process.pid == pgid]
    return worker


def test_two_workers_from_two_copies_share_only_urls_and_survive_losing_one(tmp_path: Path) -> None:
    started = time.monotonic()
    topology = ScaleOutTopology(session_services(tmp_path / "services"))
    topology.start()
    timings = {"topology up": time.monotonic() - started}
    try:
        api, url = topology.prefect_api_url, topology.bridge_url
        s3 = topology.services.s3_client()
        s3.put_object(Bucket=topology.bucket, Key="inputs/sales.csv", Body=SALES.to_csv(index=False).encode())
        plume = tmp_path / f"{STEM}.xlsx"
        simulate(PlumeFlight(seed=0)).frame.to_excel(plume, index=False, engine="openpyxl")
        with httpx.Client(base_url=url, timeout=180) as client:
            dataset_id = upload_dataset(client, cancer_frame(), "target")

        # 20 jobs of four types at once
        phase = time.monotonic()
        jobs: list[Callable[[], str]] = []
        jobs += [lambda seed=seed: traffic_job(url, seed) for seed in range(6)]
        jobs += [lambda: gasflux_job(url, plume) for _ in range(2)]  # the heaviest: ~15 s of kriging each
        jobs += [lambda: training_job(url, dataset_id) for _ in range(6)]
        jobs += [lambda n=n: dataflow_job(url, topology, f"batch-{n}") for n in range(6)]
        done = run_all(jobs)
        timings["20 jobs"] = time.monotonic() - phase
        print(f"scale-out timings so far: {timings}", flush=True)
        assert sorted(j[:3] for j in done) == ["000"] * 6 + ["002"] * 2 + ["003"] * 6 + ["004"] * 6
        # a legacy API may answer "done" a moment before Prefect records the run Completed (the MRMS
        # flow writes status 6 as its last step): wait for Prefect to catch up, then require Completed
        final = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
        top_level = poll(
            lambda: flow_runs(api),
            lambda runs: len(runs) >= 20 and all(r["state_type"] in final for r in runs),
            timeout=60,
            what="Prefect's states of the 20 runs",
        )
        assert len(top_level) == 20, [r["name"] for r in top_level]
        assert all(r["state_type"] == "COMPLETED" for r in top_level), [
            (r["name"], r["state_type"]) for r in top_level if r["state_type"] != "COMPLETED"
        ]
        ids = {r["id"] for r in top_level}
        shares = shares_of(api, ids)
        assert sorted(shares) == sorted(topology.workers), shares
        assert all(shares.values()) and sum(shares.values()) == len(ids), shares
        durations: dict[str, list[float]] = {}
        for r in top_level:
            durations.setdefault(r["name"].split("-")[0], []).append(round(r["total_run_time"], 1))
        print(f"run times by job: {durations}", flush=True)

        # a long training, then the loss of the machine running it
        with httpx.Client(base_url=url, timeout=180) as client:
            project_id = create_project(client, dataset_id)
            params = {"steps": 10000, "hidden_layer_sizes": [256, 256]}
            hist_no = insert_hist(client, project_id, "mlp_classifier", json.dumps(params))
            deadline = time.monotonic() + 120
            running: list[dict[str, Any]] = []
            while not (running and running[0]["infrastructure_pid"]):
                assert time.monotonic() < deadline, "the long training never started"
                time.sleep(0.5)
                running = flow_runs(api, state={"type": {"any_": ["RUNNING"]}})
            [run] = running
            victim = worker_of(topology, run)
            survivor = next(w for w in topology.workers.values() if w is not victim)
            # the job runs in its worker's own copy of the code (cwd, and first on its PYTHONPATH)
            assert os.readlink(f"/proc/{run['infrastructure_pid']}/cwd") == str(victim.code)
            while "step 1:" not in client.get("/mrms/get_learn_logs", params={"id": hist_no}).text:
                assert time.monotonic() < deadline, "the long training never finished its first step"
                time.sleep(0.5)  # mid-job: training, heartbeats sent, its first step logged
            assert client.post("/mrms/get_sttus_cd", json={"hist_no": hist_no}).text == "5"
            victim.kill_group()
            killed_at = time.monotonic()

            # the other worker keeps going
            before = {r["id"] for r in flow_runs(api)}
            after_loss = run_all(
                [
                    lambda: traffic_job(url, 100),
                    lambda: training_job(url, dataset_id),
                    lambda: dataflow_job(url, topology, "after-loss"),
                ]
            )
            assert len(after_loss) == 3
            new = {r["id"] for r in flow_runs(api)} - before - {run["id"]}
            assert len(new) == 3
            assert {w: n for w, n in shares_of(api, new).items() if n} == {survivor.name: 3}
            timings["3 jobs on the survivor"] = time.monotonic() - killed_at

            # the lost training is reported failed by every 003 call that shows its state; the calls a
            # client polls least come first, so none of them leans on another having noticed
            deadline = killed_at + ZOMBIE_AFTER_SECONDS + 120
            while True:
                statuses = client.get("/mrms/get_histno_status", params={"project_id": project_id}).json()
                if statuses == [{"learn_hist_no": hist_no, "learn_sttus_cd": "7"}]:
                    break
                assert statuses == [{"learn_hist_no": hist_no, "learn_sttus_cd": "5"}], statuses
                if time.monotonic() > deadline:
                    [lost] = flow_runs(api, id={"any_": [run["id"]]})
                    raise AssertionError(
                        f"still 5 after {deadline - killed_at:.0f} s; in Prefect: {lost['state']}"
                    )
                time.sleep(2)
            timings["loss reported"] = time.monotonic() - killed_at
            [crashed] = flow_runs(api, id={"any_": [run["id"]]})
            assert crashed["state_type"] == "CRASHED", crashed["state"]
            assert client.get("/mrms/model_download", params={"learn_hist_no": hist_no}).text == "error"
            logs = client.get("/mrms/get_learn_logs", params={"id": hist_no}).json()
            assert "step 1:" in logs["0"]  # what it did before the loss stays readable
            info = client.get(
                "/mrms/get_models_info", params={"project_id": project_id, "learn_hist_no": hist_no}
            ).json()[0]
            assert info["learn_sttus_cd"] == "7" and "heartbeat" in info["message"], info
            assert info["end_time"] and not info["model_file"]
            assert client.post("/mrms/get_sttus_cd", json={"hist_no": hist_no}).text == "7"
        print(f"scale-out timings: { ({k: round(v, 1) for k, v in timings.items()}) }, shares {shares}")
    except BaseException:
        topology.dump_logs()
        raise
    finally:
        topology.stop()
