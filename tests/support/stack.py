"""Starting the real embedded stack for tests.

`TestStack`: Prefect server, the runner and the bridge on free ports, with Prefect and the metadata DB each
on a PostgreSQL database created for the run and dropped after (the shared stack of the suite).
`DefaultStack`: `flowbridge up` itself, in the configuration `make run` starts (SQLite for Prefect and for
the metadata DB); only its data folder and ports differ.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg

from flowbridge.settings import Settings
from flowbridge.stack import EmbeddedStack, free_port, free_ports, wait_http

REPO = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = os.environ.get("FLOWBRIDGE_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
STACK_ENV = "FLOWBRIDGE_TEST_STACK"


@dataclass(frozen=True)
class StackInfo:
    bridge_url: str
    prefect_api_url: str
    data_dir: str
    database_url: str
    storage_url: str

    def apply_to_environment(self) -> None:
        """Point this test process's settings, storage and Prefect client at the stack."""
        os.environ.update(
            {
                "PREFECT_API_URL": self.prefect_api_url,
                "FLOWBRIDGE_DATA_DIR": self.data_dir,
                "FLOWBRIDGE_DATABASE_URL": self.database_url,
                "FLOWBRIDGE_STORAGE_URL": self.storage_url,
                "FLOWBRIDGE_PREFECT_API_URL": self.prefect_api_url,
            }
        )
        _drop_process_caches()


@contextmanager
def stack_environment(info: StackInfo) -> Iterator[StackInfo]:
    """Point this test process at `info`'s stack for a block, then back at whatever it used before.

    Settings, the job gateway and the lineage graph store are cached per process, so all are dropped on
    the way in and out: a module with its own stack must not leave later modules in the same xdist worker
    talking to its (by then dropped) database or stopped Prefect server.
    """
    saved = dict(os.environ)
    info.apply_to_environment()
    try:
        yield info
    finally:
        os.environ.clear()
        os.environ.update(saved)
        _drop_process_caches()


def _drop_process_caches() -> None:
    import api_bridge.gateway as gateway
    from flowbridge.settings import get_settings
    from storage.dataflow import graph

    get_settings.cache_clear()
    with gateway._gateway_lock:
        if gateway._gateway is not None:
            gateway._gateway.close()
        gateway._gateway = None
    # the graph store holds an engine on the metadata database of the stack that first used it
    with graph._graph_lock:
        if graph._graph is not None:
            graph._graph.close()
        graph._graph = None


def create_database(prefix: str = "flowbridge_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def stack_settings(data_dir: Path, database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "runner_limit": int(os.environ.get("FLOWBRIDGE_TEST_RUNNER_LIMIT", "4")),
        "api_tokens": ["test-token-1"],
        **overrides,
    }
    port, prefect_port = free_ports(2)
    return Settings(
        data_dir=data_dir, database_url=database_url, port=port, prefect_port=prefect_port, **values
    )


class TestStack:
    """An EmbeddedStack in a temporary folder with its own PostgreSQL metadata database."""

    __test__ = False  # a helper, not a test class

    def __init__(
        self, *, postgres: bool = True, extra_env: dict[str, str] | None = None, **overrides: object
    ):
        self.tmp = Path(tempfile.mkdtemp(prefix="flowbridge-stack-"))
        self.database_url = create_database() if postgres else f"sqlite:///{self.tmp / 'meta.db'}"
        # three test workers and four flow runs at once are more writers than SQLite serves without
        # making API calls wait (see the README's known limits); postgres=False keeps the SQLite default
        self.prefect_database_url = create_database("flowbridge_prefect") if postgres else None
        self.settings = stack_settings(
            self.tmp / "data", self.database_url, prefect_database_url=self.prefect_database_url, **overrides
        )
        self.stack = EmbeddedStack(self.settings, log_dir=self.tmp / "logs", extra_env=extra_env or {})

    def start(self) -> StackInfo:
        try:
            self.stack.start()
        except BaseException:
            self.dump_logs()
            self.stop()
            raise
        return self.info

    @property
    def info(self) -> StackInfo:
        return StackInfo(
            bridge_url=self.stack.bridge_url,
            prefect_api_url=self.stack.prefect_api_url,
            data_dir=str(self.settings.data_dir),
            database_url=self.database_url,
            storage_url=self.settings.effective_storage_url,
        )

    def dump_logs(self) -> None:
        for log in sorted((self.tmp / "logs").glob("*.log")):
            print(f"----- {log.name} (last 60 lines)")
            print("\n".join(log.read_text(errors="replace").splitlines()[-60:]))

    def stop(self) -> None:
        self.stack.stop()
        for url in (self.database_url, self.prefect_database_url):
            if url and url.startswith("postgresql"):
                drop_database(url)
        if not os.environ.get("FLOWBRIDGE_TEST_KEEP"):
            shutil.rmtree(self.tmp, ignore_errors=True)


def encode(info: StackInfo) -> str:
    return json.dumps(asdict(info))


def decode(text: str) -> StackInfo:
    return StackInfo(**json.loads(text))


@contextlib.contextmanager
def extra_bridge(info: StackInfo, env: dict[str, str] | None = None) -> Iterator[BridgeProcess]:
    """Another bridge process on the shared stack's Prefect server, storage and metadata DB (as a second
    machine behind a load balancer would be), optionally with its own settings."""
    process = BridgeProcess(info, env or {})
    try:
        process.start()
        yield process
    finally:
        process.kill()


class BridgeProcess:
    def __init__(self, info: StackInfo, env: dict[str, str]) -> None:
        self.info = info
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = free_port()
        env = dict(os.environ)
        env.update(
            {
                "PREFECT_API_URL": self.info.prefect_api_url,
                "FLOWBRIDGE_DATA_DIR": self.info.data_dir,
                "FLOWBRIDGE_DATABASE_URL": self.info.database_url,
                "FLOWBRIDGE_STORAGE_URL": self.info.storage_url,
                **self.env,
            }
        )
        argv = [sys.executable, "-m", "uvicorn", "api_bridge.app:create_app", "--factory"]
        argv += ["--host", "127.0.0.1", "--port", str(self.port), "--no-access-log"]
        self.process = subprocess.Popen(argv, env=env, start_new_session=True)
        wait_http(f"{self.url}/healthcheck.do", 60, self.process)

    def kill(self) -> None:
        """SIGKILL, as a crashed machine would stop."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


DEV_TOKEN = "dev-token-change-me"  # the 001 token `make run` sets when FLOWBRIDGE_API_TOKENS is unset


class DefaultStack:
    """`flowbridge up` run as `make run` runs it, so the suite exercises the configuration users get first:
    SQLite for Prefect and for the metadata DB, local storage, the default runner limit, no SMTP, no
    OpenLineage. The process gets a new user's environment (no FLOWBRIDGE_*/PREFECT_*/GASFLUX_* variable
    inherited from the test process) plus what `make run` sets, and only a temporary data folder and free
    ports differ from a real `make run`."""

    __test__ = False  # a helper, not a test class

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="flowbridge-default-"))
        self.data_dir = self.tmp / "data"
        self.port, self.prefect_port = free_ports(2)
        self.process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("FLOWBRIDGE_", "PREFECT_", "GASFLUX_"))
        }
        env.update(
            {
                "FLOWBRIDGE_API_TOKENS": DEV_TOKEN,  # Makefile: run
                "FLOWBRIDGE_DATA_DIR": str(self.data_dir),
                "FLOWBRIDGE_PORT": str(self.port),
                "FLOWBRIDGE_PREFECT_PORT": str(self.prefect_port),
            }
        )
        return env

    @property
    def log_path(self) -> Path:
        return self.tmp / "flowbridge-up.log"

    def start(self, timeout: float = 300) -> StackInfo:
        argv = [sys.executable, "-m", "flowbridge.cli", "up"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, env=self.environment(), cwd=REPO, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            deadline = time.monotonic() + timeout
            while "flowbridge is up" not in self.log_path.read_text(errors="replace"):
                if self.process.poll() is not None:
                    raise RuntimeError(f"flowbridge up exited with {self.process.returncode}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"flowbridge up was not up within {timeout:.0f} s")
                time.sleep(0.5)
            return self.info
        except BaseException:
            self.dump_logs()
            self.stop()
            raise

    @property
    def info(self) -> StackInfo:
        return StackInfo(
            bridge_url=f"http://127.0.0.1:{self.port}",
            prefect_api_url=f"http://127.0.0.1:{self.prefect_port}/api",
            data_dir=str(self.data_dir),
            database_url=f"sqlite:///{self.data_dir / 'flowbridge.db'}",
            storage_url=str(self.data_dir / "storage"),
        )

    def dump_logs(self) -> None:
        logs = [self.log_path, *sorted((self.data_dir / "logs").glob("*.log"))]
        for log in logs:
            if log.exists():
                print(f"----- {log.name} (last 60 lines)")
                print("\n".join(log.read_text(errors="replace").splitlines()[-60:]))

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM, as Ctrl-C: `flowbridge up` stops its components; any it could not stop are killed."""
        import psutil

        process = self.process
        if process is not None and process.poll() is None:
            components = psutil.Process(process.pid).children()
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
            for component in components:  # each leads its own process group (EmbeddedStack._spawn)
                if component.is_running():
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(component.pid, signal.SIGKILL)
        self.process = None
        if not os.environ.get("FLOWBRIDGE_TEST_KEEP"):
            shutil.rmtree(self.tmp, ignore_errors=True)
