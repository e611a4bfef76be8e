"""Nothing about a job lives only in a process: bridges restart, metadata DBs differ, runners die."""

from __future__ import annotations

import io
import os
import signal
import socket
import time
import uuid

import httpx
import pandas as pd
import pytest

from tests.e2e.traffic.test_traffic_api import start, upload, wait_done
from tests.support.stack import StackInfo, TestStack, extra_bridge
from tests.support.traffic import traffic_csv

pytestmark = pytest.mark.e2e


def test_restarting_the_bridge_mid_job_loses_nothing(stack: StackInfo) -> None:
    with extra_bridge(stack) as first:
        client = httpx.Client(base_url=first.url, timeout=60)
        uploaded = upload(client, traffic_csv(days=21, sensors=3, seed=7))
        started = start(client, uploaded["work_id"])
        assert started["ret"] == "4000"
        first.kill()  # mid-job: the run was only just created
    with extra_bridge(stack) as second:
        client = httpx.Client(base_url=second.url, timeout=60)
        answer, seen = wait_done(client, uploaded["work_id"])
        assert answer["process"] == "100%", answer
        assert seen == sorted(seen)
        forecast = client.post("/get_download_resu", data={"work_id": started["work_id"]})
        assert list(pd.read_csv(io.BytesIO(forecast.content)).columns) == [
            "time",
            "road_1",
            "road_2",
            "road_3",
        ]


def test_metadata_db_on_sqlite_runs_the_same_end_to_end(stack: StackInfo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The shared stack keeps metadata in PostgreSQL; a bridge on SQLite serves the same flow."""
    env = {"FLOWBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'meta.db'}"}
    with extra_bridge(stack, env) as bridge:
        client = httpx.Client(base_url=bridge.url, timeout=60)
        uploaded = upload(client, traffic_csv(days=21, sensors=1, seed=11))
        started = start(client, uploaded["work_id"])
        answer, _ = wait_done(client, started["work_id"])
        assert answer["process"] == "100%"
        forecast = pd.read_csv(
            io.BytesIO(client.post("/get_download_resu", json={"work_id": started["work_id"]}).content)
        )
        assert len(forecast) == 24
    assert (tmp_path / "meta.db").stat().st_size > 0


def _chunked_post(url: str, path: str, field: str, total: int) -> dict:
    """A multipart upload sent with chunked transfer encoding: no Content-Length to trust."""
    boundary = "fbboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()

    def body():  # type: ignore[no-untyped-def]
        yield head
        sent = 0
        line = b"2024-01-01 00:00:00,1\n" * 4096
        while sent < total:
            yield line
            sent += len(line)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = httpx.post(
        url + path,
        content=body(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        timeout=60,
    )
    return response.json()


def test_oversized_upload_is_refused_while_streaming(stack: StackInfo) -> None:
    with extra_bridge(stack, {"FLOWBRIDGE_MAX_UPLOAD_BYTES": str(2 * 1024 * 1024)}) as bridge:
        answer = _chunked_post(bridge.url, "/upload_file", "flow_file", 8 * 1024 * 1024)
        assert answer["ret"] == "6002"
        assert "limit" in answer["msg"]
        ok = _chunked_post(bridge.url, "/upload_file", "flow_file", 512 * 1024)
        assert ok["ret"] == "6000"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_killing_the_runner_mid_job_ends_in_a_reported_failure() -> None:
    """A job whose process vanishes (OOM, container kill) is marked Crashed by the heartbeat automation,
    and the legacy progress call then reports failure with the reason instead of hanging below 100 %."""
    own = TestStack(postgres=False, zombie_after_seconds=40)
    info = own.start()
    try:
        info.apply_to_environment()
        from api_bridge.gateway import JobGateway, JobState

        gateway = JobGateway()
        work_id = str(uuid.uuid4())
        run_id = gateway.submit(
            "diagnostics_probe", {"seconds": 600, "steps": 600}, api="000", legacy_id=work_id
        )
        deadline = time.monotonic() + 90
        while gateway.status(run_id, fresh=True).state is not JobState.RUNNING:
            assert time.monotonic() < deadline, "probe never started"
            time.sleep(0.5)
        time.sleep(3)  # let the first heartbeat reach the server
        runner = own.stack.processes["runner"]
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait(10)
        client = httpx.Client(base_url=info.bridge_url, timeout=30)
        deadline = time.monotonic() + 180
        while True:
            answer = client.post("/get_resu_process", data={"work_id": work_id}).json()
            if answer["ret"] != "5000":
                break
            assert time.monotonic() < deadline, f"still reported as running: {answer}"
            assert answer["process"] != "100%"
            time.sleep(2)
        assert answer["ret"] == "5001"
        assert "heartbeat" in answer["msg"].lower(), answer
        assert gateway.status(run_id, fresh=True).state is JobState.CRASHED
        gateway.close()
    finally:
        own.stop()
        from flowbridge.settings import get_settings

        get_settings.cache_clear()
        raw = os.environ.get("FLOWBRIDGE_TEST_STACK")
        if raw:
            from tests.support.stack import decode

            decode(raw).apply_to_environment()
