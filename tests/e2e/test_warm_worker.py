"""The scale-out path: `prefect deploy --all` from prefect.yaml, then `flowbridge worker` runs the work
pool's jobs forked from its warm template (a Prefect server of its own: the shared stack's runner serves
deployments of the same names)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowbridge.settings import Settings
from flowbridge.stack import EmbeddedStack, free_ports

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


async def _run_probe(timeout: float = 180) -> str:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        run = await client.create_flow_run_from_deployment(
            (await client.read_deployment_by_name("diagnostics-probe/default")).id, parameters={"seconds": 0}
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = (await client.read_flow_run(run.id)).state
            if state is not None and state.is_final():
                assert state.is_completed(), state
                return str(run.id)
            await asyncio.sleep(0.3)
    raise AssertionError("the worker never finished the probe")


def test_flowbridge_worker_runs_the_pools_deployments_warm(tmp_path: Path) -> None:
    prefect_port, port = free_ports(2)
    settings = Settings(data_dir=tmp_path / "data", prefect_port=prefect_port, port=port)
    stack = EmbeddedStack(settings, log_dir=tmp_path / "logs")
    worker = None
    try:
        stack.start_server()
        env = {**stack.environment(), "FLOWBRIDGE_APP_DIR": str(ROOT)}
        prefect = [str(BIN / "prefect"), "--no-prompt"]
        subprocess.run(
            [*prefect, "work-pool", "create", "flowbridge-process", "--type", "process"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=120,
        )
        deployed = subprocess.run(
            [*prefect, "deploy", "--all"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]
        log = (tmp_path / "worker.log").open("wb")
        # the worker's poll is 5 minutes away after its first one: only pickup on events can start the
        # probe within the 60 s the test waits
        worker = subprocess.Popen(
            [str(BIN / "flowbridge"), "worker", "--pool", "flowbridge-process", "--limit", "2"],
            env={**env, "PREFECT_WORKER_QUERY_SECONDS": "300"},
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started = time.monotonic()
        while b"started!" not in (tmp_path / "worker.log").read_bytes():
            assert time.monotonic() - started < 120, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(0.5)
        time.sleep(3)  # its first poll is over
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: stack.prefect_api_url}):
            run_id = asyncio.run(_run_probe(timeout=60))
        from storage.filesystems import Storage

        facts = Storage(settings.effective_storage_url).read_summary(run_id)["process"]
        assert facts["template_pid"] is not None, (tmp_path / "worker.log").read_text()[-3000:]
        assert facts["parent_pid"] == int(facts["template_pid"])
    finally:
        if worker is not None:
            os.killpg(worker.pid, 15)
            worker.wait(30)
        stack.stop()


def test_the_runner_picks_a_run_up_on_its_event_not_its_poll(tmp_path: Path) -> None:
    """A runner whose poll is 5 minutes apart still starts a submitted run within seconds."""
    prefect_port, port = free_ports(2)
    settings = Settings(
        data_dir=tmp_path / "data", prefect_port=prefect_port, port=port, runner_poll_seconds=300
    )
    stack = EmbeddedStack(settings, log_dir=tmp_path / "logs")
    try:
        stack.start_server()
        stack.start_runner()
        time.sleep(3)  # the runner's first poll is over
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: stack.prefect_api_url}):
            asyncio.run(_run_probe(timeout=60))
    finally:
        stack.stop()
