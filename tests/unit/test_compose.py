"""docker-compose.yml and the Dockerfile cannot be started on these machines (no Docker engine), so their
contract with the code is checked here: every FLOWBRIDGE_* variable is a real setting, bridge and workers
share exactly the Prefect API, storage and metadata DB (on S3, no shared disk), the work pool matches
prefect.yaml, the Prefect image matches the pinned version, and the image carries every package.

Operations (issue 14): every image pinned to a release, a healthcheck on every long-running service, the
bridge and workers waiting for the bucket job and a healthy Neo4j, no default API token (compose refuses
to start without one), and the GasFlux cleanup interval taken from the environment. Compose's own
variable interpolation is reproduced below (`_interpolate`) so the file is checked as compose reads it."""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
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


class InterpolationError(ValueError):
    """What `docker compose` reports for `${VAR:?message}` with VAR unset or empty."""


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<bare>\w+))"
)


def _interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's interpolation: $$ -> $, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}."""
    if isinstance(value, dict):
        return {key: _interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        current, op, arg = env.get(name), match["op"], match["arg"] or ""
        missing = current is None or (op is not None and op.startswith(":") and current == "")
        if op in (":-", "-"):
            return arg if missing else str(current)
        if op in (":?", "?"):
            if missing:
                raise InterpolationError(f"required variable {name} is missing a value: {arg}")
            return str(current)
        return current or ""

    return _VARIABLE.sub(one, value)


def _compose_as_read(env: Mapping[str, str]) -> dict[str, Any]:
    return _interpolate(_compose(), env)


def _argv(command: list[str]) -> list[str]:
    """The program and arguments a service runs, through an `sh -c "exec …"` wrapper."""
    if command[:2] == ["sh", "-c"]:
        words = shlex.split(command[2])
        return words[1:] if words[0] == "exec" else words
    return command


def _depends(service: dict[str, Any]) -> dict[str, str]:
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):  # the short form waits for nothing but the container's start
        return dict.fromkeys(depends, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in depends.items()}


TOKENS_SET = {"FLOWBRIDGE_API_TOKENS": "token-a,token-b"}


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
    command = _argv(compose["worker"]["command"])
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


# --- operations (issue 14) -----------------------------------------------------------------------------
def test_every_image_is_pinned_to_a_release() -> None:
    """No :latest and no floating major (`neo4j:5`, `postgres:16`): at least major.minor, or MinIO's
    RELEASE.<date> tags."""
    for name, service in _compose()["services"].items():
        if "build" in service:
            continue
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"
        assert re.match(r"\d+\.\d+", tag) or re.fullmatch(r"RELEASE\.\d{4}-\d\d-\d\dT[\d-]+Z", tag), (
            f"{name}: {image} is not pinned to a release"
        )


def test_the_image_builds_on_a_pinned_python() -> None:
    (base,) = re.findall(r"^FROM (\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base  # the interpreter the venv is tested on


def test_every_long_running_service_has_a_healthcheck_and_one_shot_jobs_are_awaited() -> None:
    services = _compose()["services"]
    one_shot = {
        other
        for service in services.values()
        for other, condition in _depends(service).items()
        if condition == "service_completed_successfully"
    }
    assert {"postgres-init", "minio-init", "deploy"} <= one_shot
    for name, service in services.items():
        if name in one_shot:
            assert "healthcheck" not in service and service.get("restart", "no") == "no", name
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
    for name, service in services.items():
        for other, condition in _depends(service).items():
            # a long-running dependency is awaited healthy, a one-shot job completed: never just started
            expected = "service_completed_successfully" if other in one_shot else "service_healthy"
            assert condition == expected, f"{name} -> {other}: {condition}"


@pytest.mark.parametrize("name", ["bridge", "worker"])
def test_bridge_and_workers_wait_for_the_bucket_job_and_neo4j(name: str) -> None:
    depends = _depends(_compose()["services"][name])
    assert depends["minio-init"] == "service_completed_successfully"
    assert depends["neo4j"] == "service_healthy"
    assert depends["deploy"] == "service_completed_successfully"


def test_no_default_api_token_compose_refuses_to_start_without_one() -> None:
    raw = (ROOT / "docker-compose.yml").read_text()
    uses = re.findall(r"\$\{FLOWBRIDGE_API_TOKENS([^}]*)\}", raw)
    assert uses and all(use.startswith(":?") and len(use) > 10 for use in uses), uses  # with a message
    with pytest.raises(InterpolationError, match="FLOWBRIDGE_API_TOKENS"):
        _compose_as_read({})
    with pytest.raises(InterpolationError):
        _compose_as_read({"FLOWBRIDGE_API_TOKENS": ""})
    services = _compose_as_read(TOKENS_SET)["services"]
    assert _environment(services["bridge"])["FLOWBRIDGE_API_TOKENS"] == "token-a,token-b"
    for name, service in services.items():  # no service carries a token of the file's own
        token = _environment(service).get("FLOWBRIDGE_API_TOKENS")
        assert token in (None, "token-a,token-b"), name


def test_cleanup_interval_comes_from_the_environment_with_3600_by_default() -> None:
    """Prefect 3.8 validates `schedules[].interval` in prefect.yaml as a duration before applying
    `{{ $VAR }}` templates (a templated interval makes `prefect deploy` skip the whole file), so prefect.yaml
    keeps the default and the deploy job replaces the schedule with GASFLUX_TASK_CLEANUP_INTERVAL's."""
    from prefect.cli.deploy._config import _load_deploy_configs_and_actions
    from pydantic import TypeAdapter
    from rich.console import Console

    configs, _ = _load_deploy_configs_and_actions(ROOT / "prefect.yaml", console=Console(quiet=True))
    cleanup = {c["flow_name"]: c for c in configs}["gasflux-cleanup"]  # the file loads as Prefect reads it
    intervals = [TypeAdapter(timedelta).validate_python(s["interval"]) for s in cleanup["schedules"]]
    assert intervals == [timedelta(seconds=3600)]

    for env, expected in (({}, "3600"), ({"GASFLUX_TASK_CLEANUP_INTERVAL": "900"}, "900")):
        deploy = _compose_as_read({**TOKENS_SET, **env})["services"]["deploy"]
        assert _environment(deploy)["GASFLUX_TASK_CLEANUP_INTERVAL"] == expected
        assert deploy["command"][:2] == ["sh", "-c"]
        steps = [shlex.split(step) for step in deploy["command"][2].split("&&")]
        schedule = steps.index(
            ["prefect", "deployment", "schedule", "create", f"gasflux-cleanup/{cleanup['name']}",
             "--interval", "$GASFLUX_TASK_CLEANUP_INTERVAL", "--replace", "--accept-yes"]
        )  # fmt: skip
        assert steps.index(["prefect", "--no-prompt", "deploy", "--all"]) < schedule
