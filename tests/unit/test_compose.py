"""docker-compose.yml and the Dockerfile cannot be started on these machines (no Docker engine), so their
contract with the code is checked here: every FLOWBRIDGE_* variable is a real setting, bridge and workers
share exactly the Prefect API, storage and metadata DB (on S3, no shared disk), the work pool matches
prefect.yaml, the Prefect image matches the pinned version, and the image carries every package."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from flowbridge.settings import Settings, env_names

ROOT = Path(__file__).resolve().parents[2]
SHARED = (
    "PREFECT_API_URL",
    "FLOWBRIDGE_DATABASE_URL",
    "FLOWBRIDGE_STORAGE_URL",
    "FLOWBRIDGE_STORAGE_OPTIONS",
)


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    return dict(env) if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


def test_every_flowbridge_variable_is_a_setting() -> None:
    known = {name for field, info in Settings.model_fields.items() for name in env_names(field, info)}
    for name, service in _compose()["services"].items():
        unknown = {k for k in _environment(service) if k.startswith(("FLOWBRIDGE_", "GASFLUX_"))} - known
        assert not unknown, f"{name}: {unknown}"


def test_bridge_and_workers_share_only_prefect_storage_and_database() -> None:
    services = _compose()["services"]
    bridge, worker = _environment(services["bridge"]), _environment(services["worker"])
    for key in SHARED:
        assert bridge[key] == worker[key], key
    assert bridge["FLOWBRIDGE_STORAGE_URL"].startswith("s3://")  # no folder shared between machines
    assert bridge["FLOWBRIDGE_DATABASE_URL"].startswith("postgresql://")
    for service in (services["bridge"], services["worker"]):
        assert not service.get("volumes"), "bridge and workers must not share a disk"


def test_services_dependencies_and_volumes_are_declared() -> None:
    compose = _compose()
    services = compose["services"]
    for name, service in services.items():
        depends = service.get("depends_on") or []
        for other in depends if isinstance(depends, list) else depends.keys():
            assert other in services, f"{name} depends on unknown {other}"
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0]
            assert source.startswith(("/", ".")) or source in compose["volumes"], f"{name}: {volume}"


def test_worker_pool_matches_prefect_yaml_and_image_matches_the_pin() -> None:
    compose = _compose()["services"]
    command = compose["worker"]["command"]
    assert command[:2] == ["flowbridge", "worker"]  # the warm worker (deployments/warm_worker.py)
    pool = command[command.index("--pool") + 1]
    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    assert {d["work_pool"]["name"] for d in deployments} == {pool}
    assert pool in compose["deploy"]["command"][-1]

    version = re.search(r"prefect:(\d+\.\d+\.\d+)", compose["prefect-server"]["image"])
    assert version is not None
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [p for p in pins if p.startswith("prefect>=")]
    low, high = re.fullmatch(r"prefect>=([\d.]+),<([\d.]+)", pin).groups()  # type: ignore[union-attr]

    def as_tuple(text: str) -> tuple[int, ...]:
        return tuple(int(x) for x in text.split("."))

    assert as_tuple(low) <= as_tuple(version[1]) < as_tuple(high)


def test_the_image_carries_every_package() -> None:
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    copied = set(re.findall(r"^COPY (\S+) \1$", (ROOT / "Dockerfile").read_text(), re.M))
    assert {p.rstrip("*") for p in packages["include"]} <= copied
    assert "prefect.yaml" in (ROOT / "Dockerfile").read_text()
