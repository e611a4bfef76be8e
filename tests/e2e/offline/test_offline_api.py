"""The 001 offline platform over real HTTP against the real stack, with real file systems: an S3 server
(moto, signatures checked) as CEPH, the protocol-level WebHDFS server of tests/support/webhdfs.py as HDFS
(no Hadoop can be installed here; FLOWBRIDGE_TEST_WEBHDFS_URL runs one case against a real namenode), and a
real SMTP server receiving the failure mails."""

from __future__ import annotations

import io
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pandas as pd
import pytest

from api_bridge.gateway import JobState, get_gateway
from flowbridge.stack import free_port
from storage.metadata import session_scope
from storage.offline.models import OfflineTask
from tests.support.polling import poll
from tests.support.services import API_TOKEN as TOKEN
from tests.support.services import ServicesInfo, shared_services
from tests.support.stack import StackInfo
from tests.support.traffic import traffic_csv
from tests.support.webhdfs import WebHdfsServer

pytestmark = pytest.mark.e2e

TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
SMALL_CSV = traffic_csv(days=28, freq="30min", sensors=2)


@pytest.fixture(scope="module")
def services() -> ServicesInfo:
    info = shared_services()
    if info is None:
        pytest.fail("the S3/SMTP test services were not started by the pytest controller")
    return info


@pytest.fixture()
def api(bridge: httpx.Client) -> httpx.Client:
    bridge.headers["Authorization"] = TOKEN
    return bridge


@pytest.fixture()
def bucket(services: ServicesInfo) -> str:
    name = f"e2e-{uuid.uuid4().hex[:12]}"
    services.s3_client().create_bucket(Bucket=name)
    return name


def ceph(services: ServicesInfo, path_key: str, path: str, **change: Any) -> dict[str, Any]:
    info = {
        "fileSystemType": "CEPH",
        "host": services.s3_host,
        "port": str(services.s3_port),
        "userName": services.access_key,
        "password": services.secret_key,
        path_key: path,
    }
    return {**info, **change}


def submit(api: httpx.Client, inputs: dict, outputs: dict, email: str, **extra: Any) -> httpx.Response:
    body = {
        "algorithm": "traffic_forecast",
        "params": {},
        "email": email,
        "inputFileSystemInfo": inputs,
        "outputFileSystemInfo": outputs,
        **extra,
    }
    return api.post("/api/algorithm/task/submit", json=body)


def wait_final(api: httpx.Client, task_id: int, timeout: float = 240) -> tuple[dict, list[str]]:
    answers: list[dict] = []
    answer = poll(
        lambda: api.get("/api/algorithm/task/get", params={"taskId": task_id}).json(),
        lambda a: a["status"] in {"FINISHED", "ERROR"},
        timeout=timeout,
        what=f"offline task {task_id}",
        seen=answers,
    )
    seen: list[str] = []
    for a in answers:
        assert a["status"] in {"INITIALING", "RUNNING", "FINISHED", "ERROR"}, a
        if not seen or seen[-1] != a["status"]:
            seen.append(a["status"])
    return answer, seen


def subflow_states(parent_id: str, until_final: float) -> list[str]:
    """The state types of a run's subflows, waiting up to `until_final` s for all to be final."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    deadline = time.monotonic() + until_final
    while True:
        children = get_gateway().client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id]))
        )
        states = sorted(c.state.type.value for c in children if c.state)
        if all(JobState(s).is_final for s in states) or time.monotonic() > deadline:
            return states
        time.sleep(0.5)


def flow_run_id(task_id: int) -> str:
    with session_scope() as session:
        row = session.get(OfflineTask, task_id)
        assert row is not None and row.flow_run_id
        return row.flow_run_id


def secret_block_exists(name: str) -> bool:
    from prefect.exceptions import ObjectNotFound

    try:
        get_gateway().client.read_block_document_by_name(name, "secret", include_secrets=False)
    except ObjectNotFound:
        return False
    return True


def stack_logs(stack: StackInfo) -> str:
    logs = (Path(stack.data_dir).parent / "logs").glob("*.log")
    return "\n".join(p.read_text(errors="replace") for p in logs)


# --- API surface ---------------------------------------------------------------------------------------
def test_every_call_needs_a_configured_token(bridge: httpx.Client) -> None:
    calls = [
        ("GET", "/api/algorithm/list"),
        ("GET", "/api/algorithm/task/get?taskId=1"),
        ("POST", "/api/algorithm/task/cancel?taskId=1"),
        ("POST", "/api/algorithm/task/submit"),
    ]
    for method, path in calls:
        for headers in ({}, {"Authorization": "wrong"}, {"Authorization": ""}):
            response = bridge.request(method, path, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers)
            assert response.json()["error"] == "UNAUTHORIZED"
    ok = bridge.get("/api/algorithm/list", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200


def test_list_shows_offline_job_types_with_their_contract(api: httpx.Client) -> None:
    listed = {a["name"]: a for a in api.get("/api/algorithm/list").json()["algorithms"]}
    assert "traffic_forecast" in listed and "offline_task" not in listed
    forecast = listed["traffic_forecast"]
    assert "input_path" not in forecast["params"]["properties"], "the platform sets the input itself"
    assert {"horizon", "interval_level"} <= set(forecast["params"]["properties"])
    assert forecast["input"]["kind"] == "file"
    assert forecast["output"]["folder"] == "outputPath/<taskId>/"


def test_client_mistakes_are_400_and_never_echo_the_secret(api: httpx.Client, services: ServicesInfo) -> None:
    good_in = ceph(services, "inputPath", "bkt-1#in/a.csv", password="s3cr3t-never-echoed")
    good_out = ceph(services, "outputPath", "bkt-1#out", password="s3cr3t-never-echoed")
    cases = [
        ({"email": "not-an-address"}, "email"),
        ({"email": ""}, "email"),
        ({"algorithm": "nope"}, "unknown algorithm"),
        ({"params": {"horizon": -3}}, "params.horizon"),
        ({"params": {"input_path": "x"}}, "input_path"),
        ({"inputFileSystemInfo": {**good_in, "password": None}}, "secret key"),
        ({"inputFileSystemInfo": {**good_in, "inputPath": "no-bucket-separator"}}, "bucket#path"),
        ({"outputFileSystemInfo": {**good_out, "outputPath": None}}, "outputPath"),
        ({"inputFileSystemInfo": {**good_in, "fileSystemType": "FTP"}}, "fileSystemType"),
        ({"email": "a\x00b@example.com"}, "NUL"),  # PostgreSQL cannot store it (was a 500)
        ({"params": {"no_such_parameter": 1}}, "params.no_such_parameter"),
    ]
    for change, problem in cases:
        body = {"algorithm": "traffic_forecast", "email": "a@example.com"}
        body |= {"inputFileSystemInfo": good_in, "outputFileSystemInfo": good_out, **change}
        response = api.post("/api/algorithm/task/submit", json=body)
        assert response.status_code == 400, (change, response.text)
        assert problem in response.json()["message"], (problem, response.json())
        assert "s3cr3t-never-echoed" not in response.text
    assert api.post("/api/algorithm/task/submit", content=b"{not json").status_code == 400
    for bad in ("abc", "-1", "0", "", "²", "1.5"):
        response = api.get("/api/algorithm/task/get", params={"taskId": bad})
        assert response.status_code == 400 and response.json()["error"] == "BAD_REQUEST"
    for beyond in (987654321, 2**31, 2**63, "9" * 30):  # a well-formed id of no task, however long
        missing = api.get("/api/algorithm/task/get", params={"taskId": beyond})
        assert missing.status_code == 404 and missing.json()["error"] == "NOT_FOUND"
    assert api.post("/api/algorithm/task/cancel", params={"taskId": 987654321}).status_code == 404


# --- CEPH ----------------------------------------------------------------------------------------------
def test_ceph_task_end_to_end(
    api: httpx.Client, services: ServicesInfo, bucket: str, stack: StackInfo
) -> None:
    s3 = services.s3_client()
    s3.put_object(Bucket=bucket, Key="input/flow.csv", Body=SMALL_CSV)
    # another task's output is already under out/: it must stay untouched
    s3.put_object(Bucket=bucket, Key="out/other/forecast.csv", Body=b"someone else's")
    response = submit(
        api,
        ceph(services, "inputPath", f"{bucket}#input/flow.csv"),
        ceph(services, "outputPath", f"{bucket}#out"),
        "owner@example.com",
        params={"horizon": 12},
    )
    assert response.status_code == 200, response.text
    task_id = response.json()["taskId"]
    assert isinstance(task_id, int) and set(response.json()) == {"taskId"}

    answer, seen = wait_final(api, task_id)
    assert answer["status"] == "FINISHED", answer
    assert set(answer) == {"id", "status", "addTime", "startTime", "finishTime"}
    assert answer["id"] == task_id
    assert all(TIME.match(answer[k]) for k in ("addTime", "startTime", "finishTime"))
    assert answer["addTime"] <= answer["startTime"] <= answer["finishTime"]
    assert seen[-1] == "FINISHED" and set(seen) <= {"INITIALING", "RUNNING", "FINISHED"}

    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="out/")["Contents"])
    assert f"out/{task_id}/forecast.csv" in keys and f"out/{task_id}/forecast_bounds.csv" in keys
    assert not any(k.startswith(f"out/{task_id}/work/") for k in keys), "intermediates are not results"
    assert s3.get_object(Bucket=bucket, Key="out/other/forecast.csv")["Body"].read() == b"someone else's"
    body = s3.get_object(Bucket=bucket, Key=f"out/{task_id}/forecast.csv")["Body"].read()
    forecast = pd.read_csv(io.BytesIO(body))
    assert list(forecast.columns) == ["time", "road_1", "road_2"] and len(forecast) == 12
    summary = json.loads(s3.get_object(Bucket=bucket, Key=f"out/{task_id}/result.json")["Body"].read())
    assert summary["parameters"]["horizon"] == 12

    # the secret key is nowhere the Prefect UI or the logs show, and its block is gone once the task ended
    status = get_gateway().status(flow_run_id(task_id), fresh=True)
    assert services.secret_key not in json.dumps(status.parameters)
    assert status.parameters["credentials"] == f"offline-task-{task_id}-credentials"
    lines = get_gateway().logs(flow_run_id(task_id), limit=200)
    assert lines and not any(services.secret_key in line.message for line in lines)
    assert services.secret_key not in stack_logs(stack)
    deadline = time.monotonic() + 20
    while secret_block_exists(f"offline-task-{task_id}-credentials") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not secret_block_exists(f"offline-task-{task_id}-credentials")
    # a finished task cannot be cancelled
    late = api.post("/api/algorithm/task/cancel", params={"taskId": task_id})
    assert late.status_code == 409 and late.json()["error"] == "ALREADY_ENDED"


def test_failures_end_in_error_naming_the_problem_and_mail_the_client(
    api: httpx.Client, services: ServicesInfo, bucket: str
) -> None:
    s3 = services.s3_client()
    s3.put_object(Bucket=bucket, Key="in/flow.csv", Body=SMALL_CSV)
    s3.put_object(Bucket=bucket, Key="in/garbage.csv", Body=b"this is not,a traffic\ntable at all\n")
    good_out = ceph(services, "outputPath", f"{bucket}#out")
    cases = {
        "wrong-key": (
            ceph(services, "inputPath", f"{bucket}#in/flow.csv", password="wrong-secret-key"),
            good_out,
            "rejected the access key / secret key",
        ),
        "missing-input": (ceph(services, "inputPath", f"{bucket}#in/nope.csv"), good_out, "does not exist"),
        "rejected-input": (
            ceph(services, "inputPath", f"{bucket}#in/garbage.csv"),
            good_out,
            "traffic_forecast failed",
        ),
        "unreachable": (
            ceph(services, "inputPath", f"{bucket}#in/flow.csv", port=str(free_port())),
            good_out,
            "cannot reach CEPH",
        ),
        "unwritable-output": (
            ceph(services, "inputPath", f"{bucket}#in/flow.csv"),
            ceph(services, "outputPath", "no-such-output-bucket#out"),
            "cannot write to CEPH",
        ),
    }
    started = time.monotonic()
    task_ids = {}
    for name, (inputs, outputs, _problem) in cases.items():
        response = submit(api, inputs, outputs, f"{name}-{bucket}@example.com")
        assert response.status_code == 200, response.text
        task_ids[name] = response.json()["taskId"]
    for name, (_i, _o, problem) in cases.items():
        answer, _seen = wait_final(api, task_ids[name])
        assert answer["status"] == "ERROR", (name, answer)
        assert problem in answer["message"], (name, answer)
        assert "wrong-secret-key" not in answer["message"]
        assert TIME.match(answer["finishTime"])
    assert time.monotonic() - started < 240, "every failure must end within a bounded time (a loaded CI)"
    assert not s3.list_objects_v2(Bucket=bucket, Prefix="out/").get("Contents"), "no partial output"

    mail = services.wait_mail(lambda m: m["To"] == f"wrong-key-{bucket}@example.com")
    text = mail.get_payload(decode=True).decode()
    assert str(task_ids["wrong-key"]) in mail["Subject"]
    for fact in ("traffic_forecast", "ERROR", "rejected the access key / secret key", "startTime"):
        assert fact in text
    assert "wrong-secret-key" not in text
    for name in ("missing-input", "unreachable", "unwritable-output"):
        services.wait_mail(lambda m, n=name: m["To"] == f"{n}-{bucket}@example.com")
    assert len([m for m in services.mails() if m["To"] == f"wrong-key-{bucket}@example.com"]) == 1


@pytest.mark.slow
def test_cancel_stops_a_long_task(api: httpx.Client, services: ServicesInfo, bucket: str) -> None:
    s3 = services.s3_client()
    s3.put_object(Bucket=bucket, Key="in/big.csv", Body=traffic_csv(days=120, freq="5min", sensors=8))
    email = f"cancel-{bucket}@example.com"
    response = submit(
        api,
        ceph(services, "inputPath", f"{bucket}#in/big.csv"),
        ceph(services, "outputPath", f"{bucket}#out"),
        email,
    )
    task_id = response.json()["taskId"]
    deadline = time.monotonic() + 180  # it may queue behind the other tests' tasks on a loaded machine
    while api.get("/api/algorithm/task/get", params={"taskId": task_id}).json()["status"] != "RUNNING":
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.3)
    parent = flow_run_id(task_id)
    while "RUNNING" not in subflow_states(parent, until_final=0):  # the forecast (~50 s here) has begun
        assert time.monotonic() < deadline, "the forecast subflow never started"
        time.sleep(0.3)
    time.sleep(1)
    cancelled = api.post("/api/algorithm/task/cancel", params={"taskId": task_id})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "ERROR" and "cancelled" in cancelled.json()["message"]

    answer, _seen = wait_final(api, task_id, timeout=60)
    deadline = time.monotonic() + 60
    while answer.get("finishTime") is None and time.monotonic() < deadline:
        time.sleep(0.5)
        answer = api.get("/api/algorithm/task/get", params={"taskId": task_id}).json()
    assert answer["status"] == "ERROR" and answer["message"].startswith("cancelled"), answer
    assert TIME.match(answer["finishTime"])
    # the forecast subflow died with the process: Prefect's cancellation-cleanup service (20 s loop)
    # cancels it too, so it does not stay Running until a heartbeat timeout
    assert subflow_states(parent, until_final=45) == ["CANCELLED"]
    # the work really stopped: nothing is ever written to the output, even after the forecast would end
    time.sleep(8)
    assert not s3.list_objects_v2(Bucket=bucket, Prefix="out/").get("Contents")
    mail = services.wait_mail(lambda m: m["To"] == email)
    assert "cancelled" in mail.get_payload(decode=True).decode()


def test_cancel_before_start_ends_at_once(api: httpx.Client, services: ServicesInfo, bucket: str) -> None:
    """A task no runner has picked up yet is cancelled by the bridge alone, secret and mail included."""
    email = f"early-{bucket}@example.com"
    response = submit(
        api,
        ceph(services, "inputPath", f"{bucket}#in/x.csv"),
        ceph(services, "outputPath", f"{bucket}#out"),
        email,
    )
    task_id = response.json()["taskId"]
    answer = api.post("/api/algorithm/task/cancel", params={"taskId": task_id}).json()
    assert answer["status"] == "ERROR" and "cancelled" in answer["message"]
    final, _ = wait_final(api, task_id, timeout=30)
    assert final["status"] == "ERROR" and "cancelled" in final["message"]
    # a runner that already held the run must not resurrect it
    for _ in range(10):
        time.sleep(1)
        later = api.get("/api/algorithm/task/get", params={"taskId": task_id}).json()
        assert later["status"] == "ERROR" and later["message"].startswith("cancelled"), later
    services.wait_mail(lambda m: m["To"] == email, timeout=30)
    deadline = time.monotonic() + 20
    while secret_block_exists(f"offline-task-{task_id}-credentials") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not secret_block_exists(f"offline-task-{task_id}-credentials")


# --- HDFS ----------------------------------------------------------------------------------------------
@pytest.fixture()
def webhdfs(tmp_path: Path) -> Iterator[WebHdfsServer]:
    with WebHdfsServer(tmp_path / "hdfs") as server:
        yield server


def test_hdfs_task_end_to_end_with_spare_host_fallback(api: httpx.Client, webhdfs: WebHdfsServer) -> None:
    (webhdfs.root / "data" / "in").mkdir(parents=True)
    (webhdfs.root / "data" / "in" / "flow.csv").write_bytes(SMALL_CSV)
    dead = free_port()
    hdfs = {"fileSystemType": "HDFS", "host": "127.0.0.1", "port": str(dead), "userName": "etl"}
    hdfs["spareHost"] = f"127.0.0.1:{webhdfs.port}"
    response = submit(
        api, {**hdfs, "inputPath": "/data/in"}, {**hdfs, "outputPath": "/data/out"}, "hdfs@example.com"
    )
    assert response.status_code == 200, response.text
    task_id = response.json()["taskId"]
    answer, _ = wait_final(api, task_id)
    assert answer["status"] == "FINISHED", answer
    produced = webhdfs.root / "data" / "out" / str(task_id)
    assert (produced / "forecast.csv").is_file() and (produced / "forecast_bounds.csv").is_file()
    assert not (produced / ".flowbridge-write-test").exists()
    assert {user for *_rest, user in webhdfs.calls} == {"etl"}
    ops = {op for _m, op, _p, _u in webhdfs.calls}
    assert {"GETFILESTATUS", "LISTSTATUS", "OPEN", "CREATE", "DELETE"} <= ops


@pytest.mark.skipif(not os.environ.get("FLOWBRIDGE_TEST_WEBHDFS_URL"), reason="no real namenode configured")
def test_hdfs_task_against_a_real_namenode(api: httpx.Client) -> None:
    """FLOWBRIDGE_TEST_WEBHDFS_URL=http://namenode:9870 (e.g. docker compose's namenode); user via
    FLOWBRIDGE_TEST_WEBHDFS_USER (default root)."""
    from storage.offline.remote import FileSystemInfo, connect

    url = urlsplit(os.environ["FLOWBRIDGE_TEST_WEBHDFS_URL"])
    hdfs = {
        "fileSystemType": "HDFS",
        "host": url.hostname,
        "port": str(url.port or 9870),
        "userName": os.environ.get("FLOWBRIDGE_TEST_WEBHDFS_USER", "root"),
    }
    base = f"/tmp/flowbridge-e2e-{uuid.uuid4().hex[:8]}"
    client = connect(FileSystemInfo.model_validate(hdfs), timeout=30)
    client.write(f"{base}/in/flow.csv", io.BytesIO(SMALL_CSV))
    inputs, outputs = {**hdfs, "inputPath": f"{base}/in"}, {**hdfs, "outputPath": f"{base}/out"}
    response = submit(api, inputs, outputs, "real-namenode@example.com")
    task_id = response.json()["taskId"]
    answer, _ = wait_final(api, task_id)
    assert answer["status"] == "FINISHED", answer
    listed = {f.relpath for f in client.list_input(f"{base}/out/{task_id}")}
    assert {"forecast.csv", "forecast_bounds.csv"} <= listed
    client.delete(base)


# --- the OpenAPI contract, fuzzed --------------------------------------------------------------------
def test_the_offline_contract_holds_under_fuzzing(stack: StackInfo) -> None:
    """The 001 operations as /openapi.json declares them: generated calls, valid or not, never get a
    server error."""
    from tests.e2e.mrms.test_mrms_api import fuzz

    assert fuzz(stack, "^/api/algorithm/", "/api/algorithm/", {"Authorization": TOKEN}, examples=25) == []
