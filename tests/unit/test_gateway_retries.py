"""One retry layer for the bridge's Prefect API calls: the Prefect client's, set to
FLOWBRIDGE_SUBMIT_ATTEMPTS attempts in all. A Prefect API is faked with httpx's MockTransport, so every
request the gateway makes is counted; backoff sleeps are skipped."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from prefect.client.orchestration import SyncPrefectClient

from api_bridge.gateway import JobGateway, SubmitError
from flowbridge.settings import Settings
from flows.registry import get_job_type

DEPLOYMENT_ID = uuid.uuid4()
Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    import prefect.client.base

    monkeypatch.setattr(prefect.client.base.time, "sleep", lambda _seconds: None)


def _gateway(attempts: int, handler: Handler) -> JobGateway:
    gateway = JobGateway(Settings(submit_attempts=attempts))
    client = SyncPrefectClient(
        "http://prefect.test/api", httpx_settings={"transport": httpx.MockTransport(handler)}
    )
    client.__enter__()
    gateway._client = client
    gateway._deployment_ids[get_job_type("diagnostics_probe").deployment_name] = DEPLOYMENT_ID
    return gateway


@pytest.fixture()
def creates() -> Iterator[list[httpx.Request]]:
    yield []


def _api(creates: list[httpx.Request], answers: list[int]) -> Handler:
    """csrf-token is absent (an unconfigured server); create_flow_run answers `answers` in turn, then 201."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/csrf-token"):
            return httpx.Response(404, json={"detail": "Not Found"})
        assert request.url.path == f"/api/deployments/{DEPLOYMENT_ID}/create_flow_run", request.url
        creates.append(request)
        if len(creates) <= len(answers):
            return httpx.Response(answers[len(creates) - 1], json={"detail": "busy"})
        return httpx.Response(
            201, json={"id": str(uuid.uuid4()), "flow_id": str(uuid.uuid4()), "name": "fb-run"}
        )

    return handle


@pytest.mark.parametrize("attempts", [1, 3, 6])
def test_a_busy_prefect_api_gets_exactly_the_configured_attempts(
    attempts: int, creates: list[httpx.Request]
) -> None:
    gateway = _gateway(attempts, _api(creates, [503] * 100))
    with pytest.raises(SubmitError, match="Prefect API unavailable"):
        gateway.submit("diagnostics_probe", {}, api="test", legacy_id="a")
    assert len(creates) == attempts  # not attempts x (the client's own retries + 1)
    gateway.close()


def test_a_burst_answered_503_still_creates_the_run_with_one_idempotency_key(
    creates: list[httpx.Request], monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded: list[uuid.UUID] = []
    gateway = _gateway(6, _api(creates, [503, 503, 502]))
    monkeypatch.setattr(gateway, "record", lambda **kwargs: recorded.append(kwargs["run_id"]))
    run_id = gateway.submit("diagnostics_probe", {"seconds": 1}, api="test", legacy_id="b")
    assert recorded == [run_id] and len(creates) == 4
    assert len({r.content for r in creates}) == 1  # every retry sent the same body, idempotency key included
    assert b'"idempotency_key":"test:b"' in creates[0].content.replace(b" ", b"")
    gateway.close()


def test_a_client_error_is_not_retried(creates: list[httpx.Request]) -> None:
    gateway = _gateway(6, _api(creates, [409]))
    with pytest.raises(httpx.HTTPStatusError):
        gateway.submit("diagnostics_probe", {}, api="test", legacy_id="c")
    assert len(creates) == 1
    gateway.close()


def test_the_setting_applies_to_the_gateways_calls_only() -> None:
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES

    default = PREFECT_CLIENT_MAX_RETRIES.value()
    gateway = JobGateway(Settings(submit_attempts=2))
    seen = gateway._with_retries(PREFECT_CLIENT_MAX_RETRIES.value, what="probe")
    assert seen == 1 and PREFECT_CLIENT_MAX_RETRIES.value() == default
