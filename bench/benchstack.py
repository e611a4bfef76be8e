"""Shared by the benchmark scripts: a throw-away embedded stack and a note of the machine."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from flowbridge.settings import Settings, get_settings
from flowbridge.stack import EmbeddedStack, free_ports

RESULTS = Path(__file__).with_name("results")


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {cpu}, {mem:.0f} GiB RAM, Python {platform.python_version()}"


@contextlib.contextmanager
def embedded_stack(**overrides: object) -> Iterator[EmbeddedStack]:
    """Server, runner and bridge on free ports in a temp folder; this process is pointed at them."""
    tmp = Path(tempfile.mkdtemp(prefix="flowbridge-bench-"))
    port, prefect_port = free_ports(2)
    settings = Settings(data_dir=tmp / "data", port=port, prefect_port=prefect_port, **overrides)
    stack = EmbeddedStack(settings, log_dir=tmp / "logs")
    try:
        stack.start()
        os.environ.update(
            {
                "PREFECT_API_URL": stack.prefect_api_url,
                "FLOWBRIDGE_DATA_DIR": str(settings.data_dir),
                "FLOWBRIDGE_PREFECT_API_URL": stack.prefect_api_url,
            }
        )
        get_settings.cache_clear()
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass(frozen=True)
class WrkResult:
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    rps: float
    non_2xx: int
    socket_errors: int


def wrk(
    url: str,
    *,
    connections: int = 50,
    seconds: int = 15,
    think_ms: int = 0,
    method: str = "GET",
    form: str | None = None,
) -> WrkResult:
    """Load `url` with wrk (Debian package `wrk`; `make bench` installs it): `connections` clients, each
    pausing `think_ms` between its requests (0 = saturation), for `seconds`. A C load generator, so on
    two cores the client does not eat the server's CPU the way a Python client would."""
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk (make bench does it)")
    lua = [f'wrk.method = "{method}"']
    if form is not None:
        lua += ['wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"', f'wrk.body = "{form}"']
    if think_ms:
        lua.append(f"function delay() return {think_ms} end")
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write("\n".join(lua) + "\n")
        script.flush()
        argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
        argv += ["-s", script.name, url]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    pct = {m[1]: _ms(m[2]) for m in re.finditer(r"^\s+(50|90|99)(?:\.000)?%\s+([\d.]+\w+)", out, re.M)}
    latency = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+\w+)", out)
    total = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if not (latency and total and rps) or len(pct) < 3:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return WrkResult(
        p50_ms=pct["50"],
        p90_ms=pct["90"],
        p99_ms=pct["99"],
        max_ms=_ms(latency[1]),
        requests=int(total[1]),
        rps=float(rps[1]),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(int(x) for x in sockets.groups()) if sockets else 0,
    )


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]
