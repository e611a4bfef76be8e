"""The real stacks the end-to-end tests drive.

The shared stack (Prefect and metadata DB on PostgreSQL) is started by the pytest controller before any
worker exists, shared by all workers through an environment variable, stopped at the end. Unit tests never
touch it, and it is not started when only unit tests and modules with a stack of their own are selected.

The default stack (`make run`'s configuration: SQLite for Prefect and the metadata DB) is started on first
use by the worker that runs its tests: they are one xdist group (`default_config`), so with
`--dist loadgroup` it starts once per session, on one worker, and stops when that worker ends.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.services import SERVICES_ENV, ServicesInfo, TestServices
from tests.support.services import encode as encode_services
from tests.support.stack import STACK_ENV, DefaultStack, StackInfo, TestStack, decode, encode

_shared: TestStack | None = None
_services: TestServices | None = None

# test paths that never use the shared stack: unit tests, and modules that start a stack of their own
WITHOUT_SHARED_STACK = (
    "tests/unit",
    "tests/e2e/test_default_config.py",
    "tests/e2e/test_scale_out.py",
    "tests/e2e/dataflow/test_dataflow_limits.py",
)


def _wants_stack(config: pytest.Config) -> bool:
    markexpr = config.getoption("markexpr", "") or ""
    if os.environ.get("FLOWBRIDGE_TEST_NO_STACK") or "not e2e" in markexpr:
        return False
    own = [(config.rootpath / path).resolve() for path in WITHOUT_SHARED_STACK]
    selected = [Path(arg.split("::", 1)[0]).resolve() for arg in config.args]
    return not selected or not all(any(p == o or o in p.parents for o in own) for p in selected)


def pytest_configure(config: pytest.Config) -> None:
    global _shared
    if hasattr(config, "workerinput") or os.environ.get(STACK_ENV) or not _wants_stack(config):
        return
    services = _start_services()
    _shared = TestStack(extra_env=services.stack_env())
    os.environ[STACK_ENV] = encode(_shared.start())


def _start_services() -> ServicesInfo:
    """S3 and SMTP for the offline platform, up before the stack so the runner gets their addresses."""
    global _services
    _services = TestServices(Path(tempfile.mkdtemp(prefix="flowbridge-services-")))
    info = _services.start()
    os.environ[SERVICES_ENV] = encode_services(info)
    return info


def pytest_unconfigure(config: pytest.Config) -> None:
    if _shared is not None and not hasattr(config, "workerinput"):
        if os.environ.get("FLOWBRIDGE_TEST_DUMP_LOGS"):
            _shared.dump_logs()
        _shared.stop()
    if _services is not None and not hasattr(config, "workerinput"):
        _services.stop()


@pytest.fixture(scope="session")
def stack() -> StackInfo:
    raw = os.environ.get(STACK_ENV)
    if not raw:
        pytest.fail("the shared test stack was not started (FLOWBRIDGE_TEST_NO_STACK or -m 'not e2e' is set)")
    info = decode(raw)
    info.apply_to_environment()
    return info


@pytest.fixture()
def bridge(stack: StackInfo) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.bridge_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def default_stack() -> Iterator[StackInfo]:
    """`flowbridge up` as `make run` starts it (see tests/support/stack.py DefaultStack)."""
    started = DefaultStack()
    info = started.start()
    try:
        yield info
    finally:
        if os.environ.get("FLOWBRIDGE_TEST_DUMP_LOGS"):
            started.dump_logs()
        started.stop()
