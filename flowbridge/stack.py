"""The embedded stack: Prefect server on SQLite, one runner serving every deployment, and the bridge.

`flowbridge up` (what `make run` calls) and the end-to-end tests start the very same processes through
this class, each in its own process group so Ctrl-C or a test teardown stops the whole tree.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from deployments.serve import runner_environment
from flowbridge.settings import Settings, get_settings, settings_environment
from storage.metadata import migrate

BIN = Path(sys.executable).parent


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: all held open until every one is found, because two separate
    `bind(0)` calls may get the same port back (seen: a test stack's bridge and Prefect server on one
    port)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def wait_http(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {process.returncode} before answering")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


@dataclass
class EmbeddedStack:
    settings: Settings = field(default_factory=get_settings)
    log_dir: Path | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def prefect_api_url(self) -> str:
        return f"http://{self.settings.prefect_host}:{self.settings.prefect_port}/api"

    @property
    def prefect_ui_url(self) -> str:
        return f"http://{self.settings.prefect_host}:{self.settings.prefect_port}"

    @property
    def bridge_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def environment(self) -> dict[str, str]:
        """What every child process shares: the Prefect API, the storage URL and the metadata DB URL."""
        s = self.settings
        prefect_home = s.data_dir / "prefect"
        env = dict(os.environ)
        env.update(settings_environment(s))
        env.update(
            {
                "PREFECT_HOME": str(prefect_home),
                "PREFECT_API_URL": self.prefect_api_url,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_API_DATABASE_CONNECTION_URL": s.effective_prefect_database_url,
                "PREFECT_UI_API_URL": self.prefect_api_url,
                "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.5",
                # concurrency leases (one run per dataflow) on disk: a restarted server keeps them, where
                # the in-memory default forgets them and leaves their slots taken for good
                "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": os.environ.get(
                    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE",
                    "prefect.server.concurrency.lease_storage.filesystem",
                ),
                "FLOWBRIDGE_DATA_DIR": str(s.data_dir),
                "FLOWBRIDGE_STORAGE_URL": s.effective_storage_url,
                "FLOWBRIDGE_DATABASE_URL": s.effective_database_url,
                "FLOWBRIDGE_PREFECT_API_URL": self.prefect_api_url,
                "FLOWBRIDGE_WARM_START": "true" if s.warm_start else "false",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(runner_environment(s))
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        out = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv,
            env=self.environment(),
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
        )
        self.processes[name] = process
        return process

    # --- components --------------------------------------------------------------------------------
    def start_server(self, timeout: float = 120) -> None:
        (self.settings.data_dir / "prefect").mkdir(parents=True, exist_ok=True)
        process = self._spawn(
            "prefect-server",
            [
                sys.executable,
                "-m",
                "flowbridge.prefect_server",  # `prefect server start`, SQLite writes queue (see there)
                "--host",
                self.settings.prefect_host,
                "--port",
                str(self.settings.prefect_port),
                "--analytics-off",
            ],
        )
        wait_http(f"{self.prefect_api_url}/health", timeout, process)

    def start_runner(self, name: str = "runner", timeout: float = 120) -> subprocess.Popen[bytes]:
        process = self._spawn(name, [sys.executable, "-m", "deployments.serve"])
        self._wait_deployments(timeout, process)
        return process

    def start_bridge(
        self,
        name: str = "bridge",
        port: int | None = None,
        timeout: float = 60,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        port = port or self.settings.port
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "api_bridge.app:create_app",
            "--factory",
            "--host",
            self.settings.host,
            "--port",
            str(port),
            "--no-access-log",
            "--workers",
            str(self.settings.bridge_workers),
        ]
        saved = self.extra_env
        self.extra_env = {**saved, **(env or {})}
        try:
            process = self._spawn(name, argv)
        finally:
            self.extra_env = saved
        wait_http(f"http://{self.settings.host}:{port}/healthcheck.do", timeout, process)
        return process

    def _wait_deployments(self, timeout: float, process: subprocess.Popen[bytes]) -> None:
        from flows.registry import JOB_TYPES

        deadline = time.monotonic() + timeout
        wanted = {job.deployment_name for job in JOB_TYPES.values()}
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"runner exited with {process.returncode}")
            names = self._registered_deployments()
            if names is not None and wanted <= names and self._runner_polling(process):
                return
            time.sleep(0.5)
        raise TimeoutError(f"runner did not register {sorted(wanted)} within {timeout:.0f} s")

    def _registered_deployments(self) -> set[str] | None:
        """`flow/deployment` names the Prefect API knows, or None when it answered with an error (a busy
        server's 503, a PostgreSQL "too many clients"): the caller asks again rather than crash."""
        try:
            deployments = httpx.post(f"{self.prefect_api_url}/deployments/filter", json={}, timeout=5)
            flows = httpx.post(f"{self.prefect_api_url}/flows/filter", json={}, timeout=5)
            deployments.raise_for_status()
            flows.raise_for_status()
        except httpx.HTTPError:
            return None
        flow_names = {f["id"]: f["name"] for f in flows.json()}
        return {f"{flow_names.get(d['flow_id'])}/{d['name']}" for d in deployments.json()}

    def _runner_polling(self, process: subprocess.Popen[bytes]) -> bool:
        """Deployments exist before the runner polls; give it a moment after they appear."""
        time.sleep(1.0)
        return process.poll() is None

    def start(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        migrate(self.settings.effective_database_url)
        self.start_server()
        self.start_runner()
        self.start_bridge()

    # --- stopping ----------------------------------------------------------------------------------
    def stop_process(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            self.stop_process(name)

    def wait(self, restart: bool = True) -> int:
        """Supervise until Ctrl-C (or SIGTERM), then stop everything.

        A component that dies (an OOM kill of the runner, a crashed server) is started again with
        exponential backoff while the others keep serving; what was left of its process group (a dead
        runner's job processes) is killed first, so the zombie automation reports those jobs failed and
        new jobs run on the new runner. `restart=False` stops the stack instead (the old behaviour)."""
        stopping = False

        def _stop(_signum: int, _frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        starters = {
            "prefect-server": self.start_server,
            "runner": self.start_runner,
            "bridge": self.start_bridge,
        }
        backoff: dict[str, float] = {}
        started_at = {name: time.monotonic() for name in self.processes}
        try:
            while not stopping:
                for name, process in list(self.processes.items()):
                    if process.poll() is None:
                        if time.monotonic() - started_at.get(name, 0) > STABLE_SECONDS:
                            backoff.pop(name, None)  # up long enough: the next failure restarts at once
                        continue
                    reason = describe_exit(process.returncode)
                    if not restart or name not in starters:
                        print(f"flowbridge: {name} {reason}; stopping", flush=True)
                        return process.returncode or 1
                    delay = backoff.get(name, 0.0)
                    backoff[name] = min(max(1.0, delay * 2), MAX_BACKOFF_SECONDS)
                    print(f"flowbridge: {name} {reason}; restarting it in {delay:.0f} s", flush=True)
                    self._reap_group(process)
                    if _sleep_unless(delay, lambda: stopping):
                        break
                    try:
                        starters[name]()
                        started_at[name] = time.monotonic()
                        print(f"flowbridge: {name} restarted (pid {self.processes[name].pid})", flush=True)
                    except Exception as exc:  # retried on the next pass, with a longer wait
                        print(f"flowbridge: restarting {name} failed: {exc}", flush=True)
                        failed = self.processes.get(name, process)
                        self._reap_group(failed)
                        self.processes[name] = failed
                time.sleep(0.5)
            return 0
        finally:
            self.stop()

    @staticmethod
    def _reap_group(process: subprocess.Popen[bytes]) -> None:
        """Kill what is left of a dead component's process group (its forkserver, its job processes)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


STABLE_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 30.0


def describe_exit(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with {returncode}"


def _sleep_unless(seconds: float, stop: Callable[[], bool]) -> bool:
    """Sleep up to `seconds`; True if `stop()` became true meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if stop():
            return True
        time.sleep(0.2)
    return stop()
