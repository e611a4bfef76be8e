"""`flowbridge up` supervises its components: a SIGKILL of any one of them (what an OOM kill does) leaves
the legacy APIs answering within 30 s and the next job completing; Ctrl-C still stops everything."""

from __future__ import annotations

import os
import signal
import time

import httpx
import psutil
import pytest

from tests.e2e.traffic.test_traffic_api import start, upload, wait_done
from tests.support.stack import DefaultStack
from tests.support.traffic import traffic_csv

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

COMPONENTS = {
    "runner": "deployments.serve",
    "bridge": "uvicorn",
    "prefect-server": "flowbridge.prefect_server",
}


def _component(up: psutil.Process, name: str) -> psutil.Process:
    for child in up.children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and COMPONENTS[name] in " ".join(child.cmdline()):
                return child
        except psutil.Error:  # exited (or a zombie) while we looked
            continue
    raise AssertionError(f"no {name} under flowbridge up")


def _answers_within(url: str, seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            if httpx.get(f"{url}/healthcheck.do", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the bridge did not answer within {seconds:.0f} s")


def _a_job_completes(url: str, seed: int) -> None:
    client = httpx.Client(base_url=url, timeout=60)
    uploaded = upload(client, traffic_csv(days=15, sensors=1, seed=seed))
    started = start(client, uploaded["work_id"])
    assert started["ret"] == "4000", started
    answer, _ = wait_done(client, started["work_id"])
    assert answer["process"] == "100%", answer


def test_a_killed_component_is_restarted_and_ctrl_c_stops_everything() -> None:
    stack = DefaultStack()
    info = stack.start()
    process = stack.process
    assert process is not None
    try:
        up = psutil.Process(process.pid)
        for seed, name in enumerate(COMPONENTS):
            victim = _component(up, name)
            os.kill(victim.pid, signal.SIGKILL)  # the one process, as the OOM killer does
            deadline = time.monotonic() + 90
            while True:  # the supervisor notices and starts a new one
                try:
                    replacement = _component(up, name)
                    if replacement.pid != victim.pid:
                        break
                except AssertionError:
                    pass
                assert time.monotonic() < deadline, f"{name} was not restarted"
                time.sleep(0.5)
            _answers_within(info.bridge_url, 30)
            _a_job_completes(info.bridge_url, seed)
            log = stack.log_path.read_text()
            assert f"flowbridge: {name} was killed by SIGKILL; restarting it" in log, log[-2000:]
    except BaseException:
        stack.dump_logs()
        raise
    finally:
        stack.stop()
    assert process.returncode == 0  # Ctrl-C (SIGTERM) stopped the supervisor and its components cleanly
