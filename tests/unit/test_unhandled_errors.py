"""An unhandled exception anywhere in the bridge answers that API's own error envelope, is logged with its
traceback, and leaves the client's connection usable (issue 10, item 5).

The app is the real one from `create_app`, served in-process: through httpx's ASGI transport, which raises
whatever the app lets escape (what made uvicorn drop the connection), and once through a real uvicorn on a
keep-alive connection. Exceptions are injected by monkeypatching a real 000 handler's helpers, by routes a
test adds under each API's prefix, and by BaseHTTPMiddleware that fails before or after the endpoint.
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

from api_bridge.app import create_app
from api_bridge.routers.traffic import endpoints as traffic


class Boom(RuntimeError):
    """The injected failure."""


def _boom(*_args: object, **_kwargs: object) -> None:
    raise Boom("injected failure")


def _raising_endpoint() -> None:
    raise Boom("injected failure")


# A route added under each API's prefix, and the envelope that API documents for a server error.
RAISING_ROUTES = {
    "001 offline": ("/api/algorithm/__raise", 500, {"error": "INTERNAL"}),
    "002 gasflux": ("/stats/__raise", 500, {"code": 500}),
    "003 mrms": ("/mrms/__raise", 200, "error"),
    "004 dataflow": ("/api/data-flow/__raise", 500, {"code": 500, "data": None}),
}


def _ok_endpoint() -> dict[str, str]:
    return {"ok": "yes"}


def _app_with_raising_routes() -> FastAPI:
    app = create_app()
    for path, _status, _body in RAISING_ROUTES.values():
        app.add_api_route(path, _raising_endpoint, methods=["GET"])
        app.add_api_route(path.replace("__raise", "__ok"), _ok_endpoint, methods=["GET"])
    return app


async def _call(app: FastAPI, method: str, path: str, **kwargs: object) -> httpx.Response:
    # raise_app_exceptions (the default) turns an exception escaping the app into a test error: exactly
    # what uvicorn answered by closing the connection.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as client:
        return await client.request(method, path, **kwargs)  # type: ignore[arg-type]


def _matches(response: httpx.Response, body: object) -> bool:
    if isinstance(body, str):
        return response.text == body
    answer = response.json()
    return all(answer.get(k) == v for k, v in body.items())  # type: ignore[union-attr]


@pytest.mark.parametrize("api", sorted(RAISING_ROUTES))
def test_unhandled_error_answers_the_apis_envelope(api: str, caplog: pytest.LogCaptureFixture) -> None:
    path, status, body = RAISING_ROUTES[api]
    with caplog.at_level(logging.ERROR, logger="flowbridge.errors"):
        response = asyncio.run(_call(_app_with_raising_routes(), "GET", path))
    assert response.status_code == status
    assert _matches(response, body), response.text
    assert response.headers["x-flowbridge-error"] == "internal"
    assert "Traceback" not in response.text and "injected failure" not in response.text
    logged = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], Boom)]
    assert len(logged) == 1, "the exception is logged once, with its traceback"


@pytest.mark.parametrize(
    ("path", "ret", "patched"),
    [
        ("/upload_file", "6002", "read_body"),
        ("/get_flow", "4002", "_params"),
        ("/get_resu_process", "5001", "_params"),
        ("/get_download_resu", "6001", "_params"),
    ],
)
def test_traffic_unhandled_error_answers_a_documented_ret_code(
    path: str, ret: str, patched: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(traffic, patched, _boom)
    response = asyncio.run(_call(create_app(), "POST", path, data={"work_id": "x"}))
    assert response.status_code == 200, "000 answers every error with HTTP 200 and a ret code"
    assert response.json()["ret"] == ret
    assert response.json()["msg"].startswith("服务器异常")
    assert response.headers["x-flowbridge-error"] == "internal"


def test_traffic_file_route_error_keeps_its_ret_body(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(traffic, "_static_upload", _boom)
    response = asyncio.run(_call(create_app(), "GET", "/static/upload/a.csv"))
    assert response.status_code == 500
    assert response.json()["ret"] == "6002"
    assert response.headers["x-flowbridge-error"] == "internal"


class _FailingMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.query_params.get("when") == "before":
            raise Boom("before the endpoint")
        response = await call_next(request)
        if request.query_params.get("when") == "after":
            raise Boom("after the endpoint")
        return response


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/mrms/__ok?when=before", 200, "error"),
        ("/healthcheck.do?when=after", 500, {"success": False}),
        ("/api/data-flow/__ok?when=after", 500, {"code": 500, "data": None}),
    ],
)
def test_errors_raised_in_base_http_middleware_get_the_envelope(path: str, status: int, body: object) -> None:
    app = _app_with_raising_routes()
    app.add_middleware(_FailingMiddleware)
    response = asyncio.run(_call(app, "GET", path))
    assert response.status_code == status
    assert _matches(response, body), response.text
    assert response.headers["x-flowbridge-error"] == "internal"


@pytest.fixture()
def served_bridge() -> Iterator[int]:
    """The app on a real uvicorn (lifespan off: no database, no Prefect), on a free port."""
    app = _app_with_raising_routes()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(10)


def test_connection_stays_usable_after_an_unhandled_error(served_bridge: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served_bridge, timeout=10)
    try:
        for _ in range(3):  # the same keep-alive connection, request after request
            conn.request("GET", "/api/data-flow/__raise")
            response = conn.getresponse()
            assert response.status == 500
            assert b'"code":500' in response.read().replace(b" ", b"")
            sock = conn.sock
            conn.request("GET", "/healthcheck.do")
            healthy = conn.getresponse()
            assert healthy.status == 200 and b"success" in healthy.read()
            assert conn.sock is sock, "the client had to reconnect"
    finally:
        conn.close()


def test_a_405_keeps_its_allow_header() -> None:
    """RFC 9110: a 405 names the methods the resource has; the envelope handler used to drop the header."""
    from fastapi.testclient import TestClient

    from api_bridge.app import create_app

    response = TestClient(create_app()).request("TRACE", "/stats")
    assert response.status_code == 405
    assert response.headers.get("allow") == "GET"
