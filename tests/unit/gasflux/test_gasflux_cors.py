"""GASFLUX_CORS_ORIGINS through Starlette's CORSMiddleware, on the GasFlux paths only (the bridge app as
`flowbridge bridge` builds it; no Prefect needed: nothing here reaches the gateway)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from flowbridge.settings import get_settings

ALLOWED = "http://viewer.example"


@pytest.fixture()
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("FLOWBRIDGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FLOWBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'meta.db'}")
    monkeypatch.delenv("FLOWBRIDGE_STORAGE_URL", raising=False)
    monkeypatch.setenv("GASFLUX_CORS_ORIGINS", f'["{ALLOWED}"]')
    get_settings.cache_clear()
    from api_bridge.app import create_app

    yield TestClient(create_app())  # no lifespan: no migration, no Prefect
    get_settings.cache_clear()


def test_an_allowed_origin_reads_answers_and_errors_of_the_gasflux_paths(client: TestClient) -> None:
    ok = client.get("/config", headers={"Origin": ALLOWED})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == ALLOWED
    assert "Origin" in ok.headers["vary"]
    # an error answered outside the route handler (405 here) carries the header too, so the page of an
    # allowed origin can read the envelope's message
    wrong_method = client.patch("/upload", headers={"Origin": ALLOWED})
    assert wrong_method.status_code == 405
    assert wrong_method.headers["access-control-allow-origin"] == ALLOWED
    other = client.get("/config", headers={"Origin": "http://elsewhere.example"})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize("path", ["/upload", "/task/abc", "/reports", "/download/a/b.html", "/stats/reset"])
def test_preflight_on_the_gasflux_paths(client: TestClient, path: str) -> None:
    asked = {"Origin": ALLOWED, "Access-Control-Request-Method": "PUT"}
    allowed = client.options(path, headers={**asked, "Access-Control-Request-Headers": "content-type"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert {"GET", "POST", "PUT", "DELETE"} <= {
        m.strip() for m in allowed.headers["access-control-allow-methods"].split(",")
    }
    assert allowed.headers["access-control-max-age"] == "600"
    refused = client.options(path, headers={**asked, "Origin": "http://elsewhere.example"})
    assert "access-control-allow-origin" not in refused.headers


def test_the_other_apis_send_no_cors_headers(client: TestClient) -> None:
    answer = client.get("/healthcheck.do", headers={"Origin": ALLOWED})
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers
    preflight = client.options(
        "/healthcheck.do", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in preflight.headers
