"""Turning framework-level errors into each legacy API's own envelope.

Routers parse their inputs themselves and answer client mistakes with documented codes; this module only
catches what slips past them (a malformed path parameter, an unexpected exception) so that even then the
client gets its API's envelope and a message naming the problem, never a bare HTML 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api_bridge import unhandled

log = logging.getLogger("flowbridge.errors")
Envelope = Callable[[int, str], Response]
_ENVELOPES: list[tuple[str, Envelope]] = []


def code_envelope(status: int, message: str) -> Response:
    """The {"code","message","data"} envelope (GasFlux, DataFlow)."""
    return JSONResponse({"code": status, "message": message, "data": {}}, status_code=status)


def register_envelope(prefix: str, envelope: Envelope) -> None:
    """Routers register how their API reports errors for paths under `prefix` (longest prefix wins)."""
    _ENVELOPES.append((prefix, envelope))
    _ENVELOPES.sort(key=lambda item: len(item[0]), reverse=True)


def _envelope_for(path: str) -> Envelope:
    for prefix, envelope in _ENVELOPES:
        if path.startswith(prefix):
            return envelope
    return code_envelope


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ())[1:]) or 'body'}: {err.get('msg')}"
            for err in exc.errors()
        )
        return _envelope_for(request.url.path)(400, f"invalid request: {problems}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        response = _envelope_for(request.url.path)(exc.status_code, message)
        response.headers.update(exc.headers or {})  # e.g. Allow on a 405, as HTTP requires
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        request.scope[unhandled.LOGGED_KEY] = exc  # KeepConnection must not log it twice
        response = _envelope_for(request.url.path)(500, f"internal error: {type(exc).__name__}")
        response.headers[unhandled.ERROR_HEADER] = unhandled.ERROR_VALUE
        return response
