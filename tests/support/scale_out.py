"""docker-compose.yml's scale-out topology as plain processes (there is no Docker daemon in CI).

What compose runs, and how it runs here:

- `postgres` + `postgres-init`: two fresh databases on the local PostgreSQL (Prefect's and the metadata
  DB), dropped at the end;
- `minio` + `minio-init`: a bucket on the S3 server the tests start (moto, signatures checked);
- `prefect-server`: `prefect server start` on its PostgreSQL database;
- `deploy`: `prefect work-pool create`, `prefect deploy --all` from prefect.yaml, `flowbridge db-upgrade`;
- `worker` x 2: `flowbridge worker --pool flowbridge-process --limit 2`, each from its own copy of the code
  (its cwd and PYTHONPATH, as each container has its own image) and its own scratch folder; no folder is
  shared, job files go to the bucket;
- `bridge`: `flowbridge bridge`.

Every process gets a new environment: nothing `FLOWBRIDGE_*`/`PREFECT_*` is inherited from the test
process, so the components share exactly what compose gives them (Prefect API URL, storage URL and
options, metadata DB URL). Neo4j is left out: without FLOWBRIDGE_NEO4J_URI the bridge keeps DataFlow
relations in the metadata DB.
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
from dataclasses import dataclass, field
from pathlib import Path

from flowbridge.stack import free_ports, wait_http
from tests.support.services import API_TOKEN, ServicesInfo
from tests.support.stack import REPO, create_database, drop_database

POOL = "flowbridge-process"
# what the Dockerfile copies into the image: each worker gets these, and nothing else of the repository
CODE = [
    "flowbridge",
    "flows",
    "tasks",
    "deployments",
    "api_bridge",
    "storage",
    "prefect.yaml",
    "pyproject.toml",
]
HEARTBEAT_SECONDS = 30  # Prefect's minimum
ZOMBIE_AFTER_SECONDS = 40  # a heartbeat is due every 30 s: 40 s without one means the process is gone


def copy_code(target: Path) -> Path:
    """A copy of the code as the image has it, so a worker imports its flows from there."""
    target.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in CODE:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)
    return target


def clean_environment() -> dict[str, str]:
    """The test process's environment minus everything that would configure flowbridge or Prefect."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FLOWBRIDGE_", "PREFECT_", "GASFLUX_")) and key != "PYTHONPATH"
    }


@dataclass
class Worker:
    name: str
    code: Path
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill_group(self) -> None:
        """SIGKILL the worker's whole process group (worker, warm template, every job it forked), as a
        machine or container that dies takes them all."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@dataclass
class ScaleOutTopology:
    services: ServicesInfo
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="flowbridge-scale-out-")))
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    workers: dict[str, Worker] = field(default_factory=dict)
    databases: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.bucket = f"flowbridge-{uuid.uuid4().hex[:8]}"
        self.prefect_port, self.bridge_port = free_ports(2)
        self.logs = self.tmp / "logs"
        self.logs.mkdir()

    # --- what compose's x-flowbridge-env gives every service ------------------------------------------
    @property
    def prefect_api_url(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}/api"

    @property
    def bridge_url(self) -> str:
        return f"http://127.0.0.1:{self.bridge_port}"

    @property
    def storage_url(self) -> str:
        return f"s3://{self.bucket}"

    @property
    def storage_options(self) -> dict[str, object]:
        return {
            "endpoint_url": self.services.s3_url,
            "key": self.services.access_key,
            "secret": self.services.secret_key,
            "client_kwargs": {"region_name": "us-east-1"},
        }

    def shared_env(self) -> dict[str, str]:
        return {
            "PREFECT_API_URL": self.prefect_api_url,
            "FLOWBRIDGE_DATABASE_URL": self.database_url,
            "FLOWBRIDGE_STORAGE_URL": self.storage_url,
            "FLOWBRIDGE_STORAGE_OPTIONS": json.dumps(self.storage_options),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.5",
            "PYTHONUNBUFFERED": "1",
        }

    def _env(self, home: Path, **extra: str) -> dict[str, str]:
        """A machine of its own: its own Prefect home and data folder, only the shared URLs in common."""
        home.mkdir(parents=True, exist_ok=True)
        return {
            **clean_environment(),
            **self.shared_env(),
            "PREFECT_HOME": str(home / "prefect"),
            "FLOWBRIDGE_DATA_DIR": str(home / "data"),
            **extra,
        }

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.processes[name] = process
        return process

    # --- compose's services, in its order ---------------------------------------------------------------
    def start(self, workers: int = 2, limit: int = 2) -> None:
        """compose's order, except that `prefect deploy --all` runs while workers and bridge start (they
        only need the pool and the migrated metadata DB; the first job comes after all of them)."""
        try:
            self._storage_and_databases()
            self._prefect_server()
            deploy = self._deploy()
            for index in range(workers):
                self.start_worker(f"worker-{chr(ord('a') + index)}", limit)
            self._bridge()
            self._wait_deployed(deploy)
            self._wait_workers_online()
        except BaseException:
            self.dump_logs()
            self.stop()
            raise

    def _storage_and_databases(self) -> None:
        self.services.s3_client().create_bucket(Bucket=self.bucket)
        self.prefect_database_url = create_database("flowbridge_scale_prefect")
        self.databases.append(self.prefect_database_url)
        self.database_url = create_database("flowbridge_scale_meta")
        self.databases.append(self.database_url)

    def _prefect_server(self) -> None:
        asyncpg = self.prefect_database_url.replace("postgresql://", "postgresql+asyncpg://", 1)
        env = self._env(self.tmp / "prefect-server", PREFECT_API_DATABASE_CONNECTION_URL=asyncpg)
        argv = [str(Path(sys.executable).parent / "prefect"), "server", "start"]
        argv += ["--host", "127.0.0.1", "--port", str(self.prefect_port)]
        # with its services: the triggers service runs the zombie automation
        process = self._spawn("prefect-server", argv, env, self.tmp)
        wait_http(f"{self.prefect_api_url}/health", 120, process)

    def _deploy(self) -> subprocess.Popen[bytes]:
        """compose's `deploy` job, from a copy of the code of its own: pool and metadata schema first,
        then `prefect deploy --all` in the background (returned)."""
        code = copy_code(self.tmp / "deploy-code")
        env = self._env(self.tmp / "deploy", PYTHONPATH=str(code), FLOWBRIDGE_APP_DIR=str(code))
        prefect = [sys.executable, "-m", "prefect", "--no-prompt"]
        steps = [
            [*prefect, "work-pool", "create", POOL, "--type", "process", "--overwrite"],
            [sys.executable, "-m", "flowbridge.cli", "db-upgrade"],
        ]
        for argv in steps:
            done = subprocess.run(argv, env=env, cwd=code, capture_output=True, text=True, timeout=300)
            with (self.logs / "deploy.log").open("a") as log:
                log.write(done.stdout + done.stderr)
            assert done.returncode == 0, f"{argv[2:5]} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        return self._spawn("deploy", [*prefect, "deploy", "--all"], env, code)

    def _wait_deployed(self, deploy: subprocess.Popen[bytes], timeout: float = 300) -> None:
        code = deploy.wait(timeout)
        assert code == 0, (
            f"prefect deploy --all exited with {code}:\n{(self.logs / 'deploy.log').read_text()}"
        )

    def start_worker(self, name: str, limit: int) -> Worker:
        code = copy_code(self.tmp / f"{name}-code")
        env = self._env(
            self.tmp / name,
            PYTHONPATH=str(code),
            FLOWBRIDGE_APP_DIR=str(code),
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY=str(HEARTBEAT_SECONDS),
        )
        argv = [sys.executable, "-m", "flowbridge.cli", "worker", "--pool", POOL, "--limit", str(limit)]
        process = self._spawn(name, [*argv, "--name", name], env, code)
        worker = Worker(name, code, process, self.logs / f"{name}.log")
        self.workers[name] = worker
        return worker

    def _bridge(self) -> None:
        code = copy_code(self.tmp / "bridge-code")
        env = self._env(
            self.tmp / "bridge",
            PYTHONPATH=str(code),
            FLOWBRIDGE_PORT=str(self.bridge_port),
            FLOWBRIDGE_API_TOKENS=API_TOKEN,
            FLOWBRIDGE_ZOMBIE_AFTER_SECONDS=str(ZOMBIE_AFTER_SECONDS),
        )
        process = self._spawn("bridge", [sys.executable, "-m", "flowbridge.cli", "bridge"], env, code)
        wait_http(f"{self.bridge_url}/healthcheck.do", 120, process)

    def _wait_workers_online(self, timeout: float = 180) -> None:
        """compose's worker healthcheck: each worker's heartbeat is ONLINE in the pool."""
        import httpx

        deadline = time.monotonic() + timeout
        wanted = set(self.workers)
        while True:
            for worker in self.workers.values():
                if worker.process.poll() is not None:
                    raise RuntimeError(f"{worker.name} exited with {worker.process.returncode}")
            body = {"workers": {"status": {"any_": ["ONLINE"]}}, "limit": 200}
            answer = httpx.post(
                f"{self.prefect_api_url}/work_pools/{POOL}/workers/filter", json=body, timeout=10
            )
            online = {w["name"] for w in answer.json()} if answer.status_code == 200 else set()
            if wanted <= online and all("started!" in w.log_text() for w in self.workers.values()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"workers online: {sorted(online)}, wanted {sorted(wanted)}")
            time.sleep(0.5)

    # --- the end --------------------------------------------------------------------------------------------
    def dump_logs(self) -> None:
        for log in sorted(self.logs.glob("*.log")):
            print(f"----- {log.name} (last 80 lines)")
            print("\n".join(log.read_text(errors="replace").splitlines()[-80:]))

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            process = self.processes.pop(name)
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)
        for url in self.databases:
            drop_database(url)
        self.databases.clear()
        with contextlib.suppress(Exception):
            s3 = self.services.s3_client()
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
                for item in page.get("Contents", []):
                    s3.delete_object(Bucket=self.bucket, Key=item["Key"])
            s3.delete_bucket(Bucket=self.bucket)
        if not os.environ.get("FLOWBRIDGE_TEST_KEEP"):
            shutil.rmtree(self.tmp, ignore_errors=True)
